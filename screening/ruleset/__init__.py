"""The rule language and its loading: YAML with positions (``yamlsource``), the file schema
(``schema``), conditions and their three-valued meaning (``conditions``), reason templates
(``templates``), the built rule set (``model``), and how a rule directory becomes one
(``loading``, which has ``checks`` verify references and types)."""
