from django.urls import re_path


def route(pattern: str, view, name: str):
    """Match `pattern` with or without a trailing slash; Powabase clients send both."""
    return re_path(rf"^{pattern}/?$", view, name=name)
