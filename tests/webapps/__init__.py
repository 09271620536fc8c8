"""Small web applications served by real servers in tests/test_web.py."""
