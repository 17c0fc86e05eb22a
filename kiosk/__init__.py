"""ClassCast kiosk: the panel side (player, server, usage log, window)."""
