# Remote code that must never run: pet_kit never passes trust_remote_code=True.
open("pet_kit_pwned_marker", "w").close()
