"""The backbone and what runs on it: encoding a PVP into token ids, scoring the mask, the
soft prompt, deep prompts, demonstrations and :class:`~pet_kit.model.cloze_model.ClozeModel`,
which holds them together."""
