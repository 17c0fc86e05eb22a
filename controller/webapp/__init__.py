"""The teacher's web app (``classcast app``): a local Starlette server over the controller API."""
