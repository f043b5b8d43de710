"""Deciding statuses: the fact plan and sheet of a record (``facts``), the rule set compiled to
rule definitions (``compiler``), and the two engines that say which compiled rules fire for a
fact, behind one interface (``base.RuleEngine``): durable-rules (``durable``, the only module
that imports it) and a plain-Python reference (``reference``). ``explain`` evaluates a
criterion's condition as a tree for people."""
