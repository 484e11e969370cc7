"""The pure core: definitions, static checks, compiled machines, stepping a case."""
