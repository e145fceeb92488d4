"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-30 16:43:12.823491
"""
from alembic import op
import sqlalchemy as sa
import pipelines.models
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('batch_jobs',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'running', 'complete', 'cancelled', name='batch_status', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('created_at', pipelines.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', pipelines.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', pipelines.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('total_jobs', sa.Integer(), nullable=False),
    sa.Column('options', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('domains',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('home_url', sa.Text(), nullable=True),
    sa.Column('title', sa.Text(), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('language', sa.String(length=64), nullable=True),
    sa.Column('favicon', sa.Text(), nullable=True),
    sa.Column('is_wordpress', sa.Boolean(), nullable=True),
    sa.Column('wordpress_version', sa.String(length=32), nullable=True),
    sa.Column('generator', sa.Text(), nullable=True),
    sa.Column('emails', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('phones', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('social_links', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('first_scan_at', pipelines.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_scan_at', pipelines.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_job_id', sa.Uuid(), nullable=True),
    sa.Column('url_count', sa.Integer(), nullable=False),
    sa.Column('sitemap_count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('jobs',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('domain', sa.String(length=255), nullable=False),
    sa.Column('domain_id', sa.Integer(), nullable=True),
    sa.Column('batch_id', sa.Uuid(), nullable=True),
    sa.Column('status', sa.Enum('pending', 'running', 'complete', 'failed', 'cancelled', name='job_status', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('created_at', pipelines.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', pipelines.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', pipelines.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('sitemaps_found', sa.Integer(), nullable=False),
    sa.Column('sitemaps_failed', sa.Integer(), nullable=False),
    sa.Column('urls_found', sa.Integer(), nullable=False),
    sa.Column('new_urls', sa.Integer(), nullable=False),
    sa.Column('removed_urls', sa.Integer(), nullable=False),
    sa.Column('bytes_downloaded', sa.BigInteger(), nullable=False),
    sa.Column('duration_seconds', sa.Float(), nullable=True),
    sa.Column('options', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('scrapyd_node', sa.String(length=255), nullable=True),
    sa.Column('scrapyd_jobid', sa.String(length=64), nullable=True),
    sa.Column('log_url', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['batch_jobs.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['domain_id'], ['domains.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jobs_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_domain'), ['domain'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_scrapyd_jobid'), ['scrapyd_jobid'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_status'), ['status'], unique=False)

    op.create_table('sitemaps',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('domain_id', sa.Integer(), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('type', sa.Enum('urlset', 'index', 'text', 'rss', 'atom', name='sitemap_type', native_enum=False, create_constraint=True, length=16), nullable=True),
    sa.Column('discovered_by', sa.Enum('robots', 'well_known', 'home_page', 'index', 'user', name='discovered_by', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('parent_url', sa.Text(), nullable=True),
    sa.Column('http_status', sa.Integer(), nullable=True),
    sa.Column('gzipped', sa.Boolean(), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=True),
    sa.Column('url_count', sa.Integer(), nullable=False),
    sa.Column('lastmod_share', sa.Float(), nullable=True),
    sa.Column('priority_share', sa.Float(), nullable=True),
    sa.Column('changefreq_share', sa.Float(), nullable=True),
    sa.Column('generator', sa.String(length=255), nullable=True),
    sa.Column('last_modified', sa.String(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('first_job_id', sa.Uuid(), nullable=True),
    sa.Column('last_job_id', sa.Uuid(), nullable=True),
    sa.Column('fetched_at', pipelines.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['domain_id'], ['domains.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('domain_id', 'url', name='uq_sitemaps_domain_url')
    )
    with op.batch_alter_table('sitemaps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sitemaps_last_job_id'), ['last_job_id'], unique=False)

    op.create_table('pages',
    sa.Column('domain_id', sa.Integer(), nullable=False),
    sa.Column('url', sa.Text().with_variant(sa.Text(collation='C'), 'postgresql'), nullable=False),
    sa.Column('lastmod', pipelines.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('changefreq', sa.String(length=16), nullable=True),
    sa.Column('priority', sa.Float(), nullable=True),
    sa.Column('alternates', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('images', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('news', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('videos', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('sitemap_id', sa.Integer(), nullable=True),
    sa.Column('first_seen_job_id', sa.Uuid(), nullable=False),
    sa.Column('last_seen_job_id', sa.Uuid(), nullable=False),
    sa.Column('first_seen_at', pipelines.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', pipelines.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('domain_id', 'url', name='pk_pages')
    )
    


def downgrade() -> None:
    
    op.drop_table('pages')
    with op.batch_alter_table('sitemaps', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sitemaps_last_job_id'))

    op.drop_table('sitemaps')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobs_status'))
        batch_op.drop_index(batch_op.f('ix_jobs_scrapyd_jobid'))
        batch_op.drop_index(batch_op.f('ix_jobs_domain'))
        batch_op.drop_index(batch_op.f('ix_jobs_batch_id'))

    op.drop_table('jobs')
    op.drop_table('domains')
    op.drop_table('batch_jobs')
    
