"""Training: the loop over the prompt's parameters, the driver that prepares a
:class:`~pet_kit.ClozeModel` for it (and calibrates it), continued MLM training of a
backbone (``adapt``), and the train config that ``pet-kit train`` runs."""
