"""Generated detection artefacts (package data): rules.json and SQLite queries. Do not edit."""
