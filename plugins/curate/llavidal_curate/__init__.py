"""llavidal-curate: ADL-X curation (``llavidal curate ...``) and benchmark video preparation
(``llavidal prepare ...``)."""

__version__ = "0.1.0"
