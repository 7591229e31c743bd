"""The scikit-learn faces: :class:`~pet_kit.PromptClassifier`, ensembles with
distillation (:class:`~pet_kit.PromptEnsemble`) and the distilled
:class:`~pet_kit.LinearStudent`."""
