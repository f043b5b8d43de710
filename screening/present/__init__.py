"""Decisions for people: plain text for clinicians (``text``) and the HTML/CSV batch report
(``report``)."""
