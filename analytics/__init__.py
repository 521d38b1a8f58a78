"""The analysis behind every page: SQLAlchemy Core queries pushed down to the database, no Streamlit."""
