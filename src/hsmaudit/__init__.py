"""hsmaudit: CloudHSM audit logs to Splunk HEC, parsed, checked and never lost."""

__version__ = "0.1.0"
