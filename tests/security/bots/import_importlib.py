# category: import-bypass
# attack: importlib.import_module('os'), importlib.util, importlib.machinery's loaders, and an import statement for each spelling
# marker: PWNED-import_importlib
# expect: ERROR|DONE
# target: runtime
MARK = "PWNED" + "-import_importlib"


def attempt(label, load):
    try:
        module = load()
    except Exception as exc:
        print(label, "failed:", repr(exc))
        return
    if module is not None and hasattr(module, "getpid"):
        print(MARK, label, "gave os, pid", module.getpid())


def with_importlib():
    import importlib

    return importlib.import_module("os")


def with_from():
    from importlib import import_module

    return import_module("os")


def with_util():
    import importlib.util

    spec = importlib.util.find_spec("os")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def with_machinery():
    from importlib.machinery import SourceFileLoader

    return SourceFileLoader("os", "/usr/lib/python3.11/os.py").load_module()


def with_builtin_importer():
    from importlib.machinery import BuiltinImporter

    return BuiltinImporter.load_module("posix")


for label, load in (("import_module", with_importlib), ("from importlib", with_from), ("util", with_util),
                    ("machinery", with_machinery), ("builtin importer", with_builtin_importer)):
    attempt(label, load)


def agent(observation, configuration):
    return observation.step % configuration.signs
