"""For the people who own the rules: rule cases beside the rules (``casetests``) and their
coverage (``coverage``), one criterion shown in full (``show``), and what a rule change does to
a cohort (``impact``)."""
