"""What every pipeline stands on: errors, the cache, repository paths, reading and writing files, validation, escaping, HTTP and registries."""
