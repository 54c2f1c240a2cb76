"""The inspection database: schema, migrations, queries, export. Never imports `inspector` or `model`."""
