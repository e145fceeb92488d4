"""Falcon resources: plain classes that get the store, dispatcher and config through __init__."""
