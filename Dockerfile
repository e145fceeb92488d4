# One image for both the API and scrapyd (scrapyd runs this project straight from /app: scrapy.cfg).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
EXPOSE 8000 6800
# The API (supervised waitress workers with their dispatchers); scrapyd is a separate service in
# docker-compose.yml, which sets API_HOST=0.0.0.0 and API_START_SCRAPYD=0 for this command.
CMD ["python", "-m", "api", "serve"]
