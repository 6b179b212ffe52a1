"""Image building: the interpreter artifact a runtime image is assembled around."""
