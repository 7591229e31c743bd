"""Many saved prompts on one backbone (:class:`~pet_kit.serving.bank.PromptBank`) and the
HTTP server over it."""
