"""Who may do what: roles and their capabilities (``roles``), and the start-up checks that refuse
to serve a studio anybody could reach as an admin (``exposure``)."""
