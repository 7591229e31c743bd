"""Looking at prompts: what the trained slots resemble and why a text got its label
(``explain``), and label words proposed from labelled examples (``label_search``)."""
