"""Building, signing, attesting and verifying the runtime images."""
