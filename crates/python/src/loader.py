"""Resolve a gunicorn-style APP_MODULE ("pkg.mod:attr", "pkg.mod",
"pkg.mod:factory()", "pkg.mod:factory('arg', key=1)") to the app callable.

Raises AppLoadError with an operator-facing message for every way the
specification can be wrong; exceptions raised by the user's module while it
is imported propagate unchanged so their traceback can be logged.
"""
import ast
import importlib


class AppLoadError(Exception):
    pass


def _literal(node, spec):
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise AppLoadError(
            "Failed to parse arguments as literal values: %r" % spec
        ) from None


def load(spec):
    module_name, _, expression = spec.partition(":")
    if not module_name:
        raise AppLoadError("No module name in application specification %r" % spec)
    expression = expression or "application"
    try:
        tree = ast.parse(expression, mode="eval").body
    except SyntaxError:
        raise AppLoadError(
            "Failed to parse %r as an attribute name or function call." % expression
        ) from None

    if isinstance(tree, ast.Name):
        name, args, kwargs, is_call = tree.id, [], {}, False
    elif isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name):
        name, is_call = tree.func.id, True
        args = [_literal(arg, expression) for arg in tree.args]
        kwargs = {kw.arg: _literal(kw.value, expression) for kw in tree.keywords}
    else:
        raise AppLoadError(
            "Failed to parse %r as an attribute name or function call." % expression
        )

    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise AppLoadError("No module named '%s'" % error.name) from None
        raise

    try:
        app = getattr(module, name)
    except AttributeError:
        raise AppLoadError(
            "Failed to find attribute %r in %r." % (name, module_name)
        ) from None

    if is_call:
        try:
            app = app(*args, **kwargs)
        except TypeError as error:
            raise AppLoadError(
                "Error while loading the application:\n%s: %s"
                % (type(error).__name__, error)
            ) from None
        if app is None:
            raise AppLoadError("Application factory %r returned None." % expression)

    if not callable(app):
        raise AppLoadError("Application object must be callable.")
    return app


