"""Everything that talks to the outside world: database, importers, the broker simulator."""
