"""Apache Airflow provider for Edge Impulse Studio."""

__version__ = "0.1.0"
