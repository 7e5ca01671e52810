"""Pydantic report models, one module per report kind; every JSON report derives from ReportBase."""
