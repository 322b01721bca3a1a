"""Terminology data (JSON) shipped as package data: see README.md in this folder."""
