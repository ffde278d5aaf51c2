from django.urls import re_path


def route(pattern: str, view, name: str) -> list:
    """Match `pattern` with or without a trailing slash; Powabase clients send both.

    The OpenAPI schema documents the path without the slash only: the second
    pattern's view is built with `schema=None`, which schema generation skips.
    """
    actions = getattr(view, "actions", None)
    initkwargs = {**getattr(view, "initkwargs", {}), "schema": None}
    if actions is not None:
        with_slash = view.cls.as_view(actions, **initkwargs)
    else:
        with_slash = view.cls.as_view(**initkwargs)
    return [
        re_path(rf"^{pattern}$", view, name=name),
        re_path(rf"^{pattern}/$", with_slash),
    ]
