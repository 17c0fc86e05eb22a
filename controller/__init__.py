"""ClassCast controller: the teacher and admin side (client, group, CLI)."""
