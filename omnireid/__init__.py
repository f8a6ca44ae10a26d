"""omnireid: OSNet person re-identification, exact to the papers and fast."""

__version__ = "0.1.0"
