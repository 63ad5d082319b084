"""How often the emulator files a standard-library module under its library-reference chapter.

The nightly DAG (``dags/gemini_batch_nightly.py``) asks for each module's category, its categories
being the chapters of the Python Library Reference, each with a description. ``SAMPLE`` is a
labelled sample: modules with the chapter the Python 3.11 documentation lists them in
(https://docs.python.org/3.11/library/index.html). Each module's docstring goes to the emulator
as the DAG sends it (its prompt template, response schema and system instruction) through the
real google-genai SDK, and the answer's ``category`` is compared with the label. Modules without
a Python source docstring (C modules such as ``math``, packages whose ``__init__`` has none) are
not in the DAG's input and are left out.

Prints one JSON object: ``modules`` (labelled modules answered), ``correct``, ``accuracy`` (0-1)
and ``misses`` (``module``, ``chapter``, ``answered``).

    .venv/bin/python benchmarks/category_accuracy.py
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
from pathlib import Path
from typing import Any

from google import genai
from google.genai import types

from gemini_batch_provider.emulator import EmulatorConfig, EmulatorThread

SAMPLE = {
    "text processing": ["string", "re", "difflib", "textwrap", "stringprep", "rlcompleter"],
    "binary data": ["struct", "codecs"],
    "data types": ["datetime", "calendar", "collections", "heapq", "bisect", "weakref", "types", "copy",
                   "pprint", "reprlib", "enum", "graphlib", "zoneinfo"],
    "math and numbers": ["numbers", "decimal", "fractions", "random", "statistics"],
    "functional programming": ["functools", "operator"],
    "files and directories": ["pathlib", "posixpath", "filecmp", "tempfile", "glob", "fnmatch", "linecache",
                              "shutil", "stat"],
    "data persistence": ["pickle", "copyreg", "shelve", "dbm", "sqlite3"],
    "compression and archives": ["gzip", "bz2", "lzma", "zipfile", "tarfile"],
    "file formats": ["csv", "configparser", "tomllib", "netrc", "plistlib"],
    "cryptography": ["hashlib", "hmac", "secrets"],
    "operating system": ["os", "io", "argparse", "getopt", "logging", "getpass", "curses", "platform", "ctypes"],
    "concurrency": ["threading", "multiprocessing", "concurrent.futures", "subprocess", "sched", "queue"],
    "networking": ["asyncio", "socket", "ssl", "selectors", "signal"],
    "internet data": ["email", "json", "mailbox", "mimetypes", "base64", "quopri"],
    "markup": ["html", "html.parser", "html.entities", "xml.etree.ElementTree", "xml.dom", "xml.dom.minidom",
               "xml.sax"],
    "internet protocols": ["webbrowser", "wsgiref", "urllib.parse", "urllib.request", "http.client",
                           "http.server", "http.cookies", "ftplib", "poplib", "imaplib", "smtplib", "uuid",
                           "socketserver", "xmlrpc.client", "ipaddress"],
    "multimedia": ["wave", "colorsys"],
    "internationalization": ["gettext", "locale"],
    "program frameworks": ["turtle", "cmd", "shlex"],
    "user interfaces": ["tkinter", "tkinter.ttk", "idlelib"],
    "development tools": ["typing", "pydoc", "doctest", "unittest", "unittest.mock"],
    "debugging and profiling": ["bdb", "pdb", "cProfile", "profile", "timeit", "trace"],
    "packaging": ["ensurepip", "venv", "zipapp"],
    "runtime services": ["sysconfig", "warnings", "dataclasses", "contextlib", "abc", "traceback", "inspect",
                         "site"],
    "custom interpreters": ["code", "codeop"],
    "importing": ["zipimport", "pkgutil", "modulefinder", "runpy", "importlib"],
    "language services": ["ast", "symtable", "token", "keyword", "tokenize", "tabnanny", "py_compile",
                          "compileall", "dis", "pickletools"],
    "unix services": ["pty", "tty"],
}
NIGHTLY_DAG = Path(__file__).parents[1] / "dags" / "gemini_batch_nightly.py"


def nightly_dag() -> Any:
    """The nightly DAG's module, loaded from its file."""
    spec = importlib.util.spec_from_file_location("gemini_batch_nightly", NIGHTLY_DAG)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the module's annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def measure(client: genai.Client) -> dict[str, Any]:
    """Ask ``client`` for each labelled module's category as the nightly DAG does; the figures above."""
    dag = nightly_dag()
    chapter_of = {module: chapter for chapter, modules in SAMPLE.items() for module in modules}
    config = types.GenerateContentConfig(
        system_instruction=dag.SYSTEM_INSTRUCTION, response_mime_type="application/json",
        response_json_schema=dag.ModuleSummary.model_json_schema(),
    )
    misses, answered = [], 0
    for record in dag.stdlib_docstrings(limit=100_000):
        if record["module"] not in chapter_of:
            continue
        prompt = dag.PROMPT_TEMPLATE.format(**record)
        response = client.models.generate_content(model="gemini-2.5-flash", contents=prompt, config=config)
        category = json.loads(response.text)["category"]
        answered += 1
        if category != chapter_of[record["module"]]:
            misses.append({"module": record["module"], "chapter": chapter_of[record["module"]], "answered": category})
    correct = answered - len(misses)
    return {"modules": answered, "correct": correct, "accuracy": round(correct / answered, 3), "misses": misses}


def main() -> None:
    logging.disable(logging.INFO)  # the SDK's per-request lines would go to stdout, among the figures
    with EmulatorThread(EmulatorConfig()) as emulator:
        client = genai.Client(api_key="benchmark-key", http_options=types.HttpOptions(base_url=emulator.base_url))
        print(json.dumps(measure(client)))


if __name__ == "__main__":
    main()
