"""mailauth-survey: email authentication and transport security adoption across .jp."""

__version__ = "0.1.0"
