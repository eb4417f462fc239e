"""Reliability suite: kill -9 and resume, bad inputs (issue 8)."""
