"""Nightly Gemini batch: a one-sentence summary and a category for each Python standard-library module.

Real input that ships with every Python: the module docstrings of the standard library, read from
the source files with ``ast`` (never by importing them). One Gemini Batch API job per run; the task
waits in the triggerer and lands one results row per module under ``output_dir``.

Answers are reused: every run adds the answers it paid for to the answer store
``<output_dir>/answers``, and a module whose request was answered before (same docstring, prompt,
model and settings) lands from that answer, nothing sent. The docstrings of the standard library
do not change between nights, so the second night sends nothing but what changed.

The results are the Airflow Asset ``gemini_module_summaries``: each successful run updates it, and
``gemini_results_report`` runs on each update.

Runs on the connection ``gemini_default``: the local emulator in the demo, real Gemini when the
connection holds a real API key and no ``base_url``.
"""

from __future__ import annotations

import ast
import json
import os
import sysconfig
from pathlib import Path
from typing import Literal

import pendulum
from airflow.sdk import Asset, Param, dag, task
from pydantic import BaseModel, Field

from gemini_batch_provider.operators.batch import GeminiBatchOperator

MODULE_SUMMARIES = Asset("gemini_module_summaries")  # this DAG's results; gemini_results_report runs on it

# The categories are the chapters of the Python Library Reference (https://docs.python.org/3/library/),
# each described by what the chapter's introduction and its modules' synopses say it covers. Gemini
# reads each description (a JSON schema ``anyOf`` of one-value enums, see ModuleSummary).
CATEGORIES = {
    "text processing": (
        "Modules for string manipulation and other text processing services: common string operations, string "
        "formatting and templates, regular expression operations for matching and substitution, helpers for computing"
        " deltas and differences between sequences of lines of text, text wrapping and filling of paragraphs, the "
        "Unicode character database, internet string preparation, readline line editing and completion functions."
    ),
    "binary data": (
        "Modules for basic operations on binary data: interpreting bytes as packed binary data, C structs and byte "
        "order, the codec registry and base classes for encoding and decoding, encoders and decoders."
    ),
    "data types": (
        "Modules for specialized data types such as dates and times, calendars, time zones, fixed-type arrays, heap "
        "queues, double-ended queues, container datatypes, bisection of sorted lists, weak references, dynamic type "
        "creation and names for built-in types, shallow and deep copy operations, pretty printing of data structures,"
        " object representations with size limits, enumerations, and graphs with topological sorting."
    ),
    "math and numbers": (
        "Modules for numbers and mathematics: math functions and data types, the numeric abstract base classes, "
        "mathematical functions for floating point and complex numbers, decimal fixed point and floating point "
        "arithmetic with arbitrary precision, rational numbers and fractions, pseudo-random number generators and "
        "random distributions, and mathematical statistics functions such as mean, median and variance."
    ),
    "functional programming": (
        "Modules for functions and classes that support a functional programming style and general operations on "
        "callables: iterators for efficient looping, higher-order functions and operations on callable objects, "
        "partial application, caching, and the standard operators as functions."
    ),
    "files and directories": (
        "Modules for disk files and directories: object-oriented filesystem paths, common pathname manipulations, "
        "reading the properties of files, interpreting stat results, comparing files and directories, creating "
        "temporary files and directories, Unix filename pattern matching, Unix style pathname pattern expansion "
        "(filename globbing), random access to text lines, iterating over lines from multiple input streams, and "
        "high-level file operations such as copying, moving and removing files and directory trees."
    ),
    "data persistence": (
        "Modules for storing Python data in a persistent form on disk: object serialization to and from a stream of "
        "bytes with pickling and unpickling, registering pickle support functions, persistent dictionaries of pickled"
        " objects (shelves), internal object serialization, key-value database files (dbm), and a DB-API interface "
        "for SQLite databases and SQL queries."
    ),
    "compression and archives": (
        "Modules for data compression and archiving: compressing and decompressing data, streams and files with the "
        "zlib deflate, gzip, bzip2 and lzma (Lempel-Ziv-Markov chain) algorithms, and creating, reading, writing and "
        "extracting ZIP archives and tar archive files."
    ),
    "file formats": (
        "Modules for parsing miscellaneous file formats that are not markup languages and not related to email: CSV "
        "(comma-separated values) files, configuration files in INI format, TOML files, netrc files, and Apple plist "
        "property list files."
    ),
    "cryptography": (
        "Modules for cryptographic services: algorithms of a cryptographic nature, secure hashes and message digests,"
        " keyed hashing for message authentication (HMAC), and generating secure random numbers, tokens and passwords"
        " for managing secrets."
    ),
    "operating system": (
        "Modules for generic operating system services available on almost all operating systems: miscellaneous "
        "operating system interfaces, environment variables, core tools for working with streams and binary and text "
        "I/O, time access and conversions, parsers for command-line options and arguments, logging facilities for "
        "applications, portable password input, terminal handling for character-cell displays, the underlying "
        "platform's identifying data, standard errno system symbols, and a foreign function library for calling "
        "functions in shared libraries (DLLs) with C data types."
    ),
    "concurrency": (
        "Modules for concurrent execution of code: thread-based parallelism, process-based parallelism, launching "
        "parallel tasks with thread and process pool executors and futures, subprocess management (spawning new "
        "processes, connecting to their input, output and error pipes, and obtaining their return codes), an event "
        "scheduler, synchronized queue classes for multi-producer, multi-consumer queues, and context variables."
    ),
    "networking": (
        "Modules for networking and interprocess communication: asynchronous I/O with an event loop, coroutines, "
        "tasks and transports, the low-level networking interface of sockets, TLS/SSL wrappers for socket objects, "
        "waiting for I/O completion, high-level I/O multiplexing, handlers for asynchronous events and signals, and "
        "memory-mapped file support."
    ),
    "internet data": (
        "Modules for handling data formats commonly used on the internet: email and MIME message handling, parsing "
        "and generating email messages, the JSON encoder and decoder, manipulating mailboxes in various formats, "
        "mapping filenames to MIME types, Base16, Base32, Base64 and Base85 data encodings, conversions between "
        "binary and ASCII, and quoted-printable encoding and decoding."
    ),
    "markup": (
        "Modules for structured markup processing tools: HTML (HyperText Markup Language) support, a simple HTML and "
        "XHTML parser, definitions of HTML general entities, and XML (Extensible Markup Language) processing: the "
        "ElementTree XML API, the Document Object Model (DOM), SAX event-driven parsing with content handlers, and "
        "fast XML parsing using Expat."
    ),
    "internet protocols": (
        "Modules for internet protocols and support: a convenient web browser controller, WSGI utilities and a "
        "reference implementation, URL handling (parsing URLs into components, opening and fetching URLs), HTTP "
        "protocol clients and servers, HTTP cookies and state management, FTP, POP3 and IMAP4 protocol clients, an "
        "SMTP protocol client for sending mail, UUID objects, a framework for network servers, XML-RPC clients and "
        "servers for remote procedure calls, and IPv4/IPv6 address manipulation."
    ),
    "multimedia": (
        "Modules for multimedia services: algorithms and interfaces for multimedia applications, reading and writing "
        "WAV (WAVE) sound files and audio data, and conversions between color systems such as RGB, YIQ, HLS and HSV."
    ),
    "internationalization": (
        "Modules for internationalization: writing software that is independent of language and locale, multilingual "
        "internationalization services with message catalogs to translate program messages, and locale services for "
        "formatting numbers, currency and dates to local conventions."
    ),
    "program frameworks": (
        "Modules for program frameworks that largely dictate the structure of a program: turtle graphics, support for"
        " line-oriented command interpreters, and simple lexical analysis for Unix shell-like syntax."
    ),
    "user interfaces": (
        "Modules for graphical user interfaces with Tk: the Tcl/Tk GUI toolkit, windows, widgets, themed widgets, "
        "dialogs, file selection and color choosers, fonts, scrolled text, drag and drop, and the IDLE integrated "
        "development environment and editor."
    ),
    "development tools": (
        "Modules for development tools that help you write software: support for type hints, a documentation "
        "generator and online help system, testing interactive Python examples in docstrings, a unit testing "
        "framework with test cases, test suites and test runners, a mock object library, and regression tests."
    ),
    "debugging and profiling": (
        "Modules for debugging and profiling: a debugger framework, the Python debugger that steps through code, "
        "analyzes stack frames and sets breakpoints, dumping the Python traceback on a fault, the Python profilers "
        "giving a detailed breakdown of execution times, measuring execution time of small code snippets, tracing or "
        "tracking Python statement execution, and tracing memory allocations."
    ),
    "packaging": (
        "Modules for software packaging and distribution: bootstrapping the pip installer, creation of virtual "
        "environments, and managing executable Python zip archives."
    ),
    "runtime services": (
        "Modules for Python runtime services: the interpreter and its interaction with its environment, "
        "system-specific parameters and functions, access to Python's configuration information, built-in objects, "
        "the top-level code environment, warning control, data classes, utilities for with-statement contexts, "
        "abstract base classes, exit handlers, printing or retrieving a stack traceback, the garbage collector "
        "interface, inspecting live objects, and the site-specific configuration hook."
    ),
    "custom interpreters": (
        "Modules for custom Python interpreters: base classes for interactive interpreters and read-eval-print loops,"
        " and compiling Python code interactively."
    ),
    "importing": (
        "Modules for importing modules: new ways to import other Python modules and hooks for customizing the import "
        "process, importing modules from zip archives, package extension utilities, finding modules used by a script,"
        " locating and running Python modules without importing them first, and the implementation of import with "
        "loaders, finders, resources and package metadata."
    ),
    "language services": (
        "Modules for Python language services: working with the Python language, abstract syntax trees, symbol tables"
        " of the compiler, constants used with parse trees, tokens and keywords, a lexical scanner for tokenizing "
        "Python source, detection of ambiguous indentation, compiling Python source files to byte code, a "
        "disassembler for Python bytecode, and tools for pickle developers."
    ),
    "unix services": (
        "Modules for Unix-specific services: the most common POSIX system calls, the password and group databases, "
        "POSIX tty control and terminal functions, pseudo-terminal utilities, the fcntl and ioctl system calls, "
        "resource usage information, and Unix syslog library routines."
    ),
    "windows services": (
        "Modules for MS Windows specific services: useful routines from the MS VC++ runtime, Windows registry access,"
        " and the sound-playing interface for Windows."
    ),
    "other": "Anything else: modules that fit none of the other chapters.",
}
SKIPPED_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}
PROMPT_TEMPLATE = "Module: {module}\n\n{docstring}"  # one row's prompt, from its input record
SYSTEM_INSTRUCTION = (
    "You catalogue the Python standard library. Summarize the module's docstring in one sentence and give the "
    "module the category of the library-reference chapter it belongs to."
)


def _described(schema: dict, options: dict[str, str]) -> None:
    """Turn an enum's JSON schema into ``anyOf`` one-value enums, each with its description, so that the
    model reads what each option means (Gemini's JSON schema support includes ``anyOf`` and ``description``:
    https://ai.google.dev/gemini-api/docs/structured-output)."""
    del schema["enum"], schema["type"]
    schema["anyOf"] = [{"type": "string", "enum": [name], "description": text} for name, text in options.items()]


class ModuleSummary(BaseModel):
    """What Gemini answers for each module (structured output)."""

    summary: str = Field(min_length=1, description="The module's purpose in one sentence")
    category: Literal[tuple(CATEGORIES)] = Field(  # type: ignore[valid-type]  # one of CATEGORIES
        description="The library-reference chapter the module belongs to",
        json_schema_extra=lambda schema: _described(schema, CATEGORIES),
    )


def stdlib_docstrings(limit: int):
    """Yield ``{"module", "docstring"}`` for standard-library modules with a docstring, by module name."""
    root = Path(sysconfig.get_paths()["stdlib"])
    found = []
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).parts
        if SKIPPED_DIRS.intersection(parts[:-1]):
            continue
        module = ".".join(parts[:-1] + (() if path.stem == "__init__" else (path.stem,)))
        found.append((module, path))
    count = 0
    for module, path in sorted(found):
        try:
            docstring = ast.get_docstring(ast.parse(path.read_bytes()))
        except (SyntaxError, ValueError):  # a few stdlib files are templates or other Python versions
            continue
        if docstring and docstring.strip():
            yield {"module": module, "docstring": docstring.strip()}
            count += 1
            if count >= limit:
                return


@dag(
    schedule="0 2 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["gemini", "batch"],
    params={
        "model": Param("gemini-3-flash-preview", type="string", description="Gemini model to run the batch on"),
        "row_limit": Param(1000, type="integer", minimum=1, maximum=20000, description="At most this many modules"),
        "output_dir": Param(
            os.environ.get("GEMINI_BATCH_OUTPUT_DIR", "/tmp/gemini-batch-results"), type="string",
            description="Folder for this run's input and results files (one subfolder per run)",
        ),
    },
    doc_md=__doc__,
)
def gemini_batch_nightly():
    @task
    def prepare_input(params=None, run_id=None) -> str:
        """Write the docstrings to ``<output_dir>/<run_id>/input.jsonl``; returns the path."""
        path = Path(params["output_dir"]).expanduser() / run_id / "input.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as out:
            for record in stdlib_docstrings(params["row_limit"]):
                out.write(json.dumps(record) + "\n")
        return str(path)

    # [START howto_asset_producer]
    GeminiBatchOperator(
        task_id="summarize_modules",
        deferrable=True,  # wait in the triggerer, whatever [operators] default_deferrable says
        input_path=prepare_input(),
        key_field="module",
        prompt_template=PROMPT_TEMPLATE,
        system_instruction=SYSTEM_INSTRUCTION,
        # Gemini 3 thinks at HIGH unless told; a one-line summary and a category need little of it.
        # (Its temperature is best left at its default, 1.0: https://ai.google.dev/gemini-api/docs/gemini-3.)
        generation_config={"thinking_config": {"thinking_level": "low"}},
        response_schema=ModuleSummary,  # each row's answer lands validated in its "parsed" field
        outlets=[MODULE_SUMMARIES],  # the asset event carries the summary: output_path, counts, cost
        model="{{ params.model }}",
        output_path="{{ params.output_dir }}/{{ run_id }}/results.jsonl",
        answer_store="{{ params.output_dir }}/answers",  # shared by every night: each sends only what changed
        poll_interval=float(os.environ.get("GEMINI_BATCH_POLL_INTERVAL", "30")),
    )
    # [END howto_asset_producer]


gemini_batch_nightly()
