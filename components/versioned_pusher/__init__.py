"""Pusher executor that publishes each blessed model as a complete, new numbered version."""
