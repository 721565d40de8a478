"""Jobs, the one unit of work for images and videos: their statuses and state machine
(``status``), how a change is applied (``transitions``), what users do (``actions``), how they are
read back (``queries``, ``browse``) and the one shape every caller shows them in (``schema``)."""
