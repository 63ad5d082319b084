"""The two template languages of ``prompt_template``, and how they are told apart.

Airflow's Jinja renders the operators' templated parameters when a try starts (``{{ params.x }}``,
``{{ ds }}``); then each row fills in the prompt's ``{field}``s (Python's ``str.format``, see
``core.requests``). Text with a literal brace is written for the second and wrapped for the first:
``{% raw %}Answer as {{"summary": ...}}{% endraw %}`` reaches the rows as ``Answer as {{"summary":
...}}``, and the model reads ``Answer as {"summary": ...}``. Text that no row fills in belongs in
``system_instruction``, which takes Jinja alone.

When the DAG is parsed there is no run to render with, so the row template is checked on a preview:
Jinja's syntax in full, and the text Jinja will leave as it is.
"""

from __future__ import annotations

import jinja2

from gemini_batch_provider.core.errors import InputError
from gemini_batch_provider.core.requests import LITERAL_BRACES

JINJA_MARKERS = ("{{", "{%", "{#")
#: What a prompt made by Jinja alone (``"{{ params.prompt }}"``) is checked as when the DAG is parsed.
JINJA_ONLY = "(rendered by Airflow)"


def preview(template: str, env: jinja2.Environment) -> str:
    """``template`` as the rows will see it, less what Airflow's Jinja will put in: its literal text
    (``{% raw %}`` blocks' included), every expression, statement and comment left out; a template
    of Jinja alone is ``JINJA_ONLY``. Anything but a string (an XComArg, say) is given back as it is.

    :raises InputError: for Jinja that does not parse, with the way to write literal braces.
    """
    if not isinstance(template, str) or not any(marker in template for marker in JINJA_MARKERS):
        return template
    try:
        env.parse(template)
    except jinja2.TemplateSyntaxError as exc:
        raise InputError(f"prompt_template is not valid Jinja, which Airflow renders first ({exc.message}, line "
                         f"{exc.lineno}); {LITERAL_BRACES}") from None
    text = "".join(value for _, kind, value in env.lex(template) if kind == "data")
    return text if text.strip() else JINJA_ONLY


def render_error(exc: jinja2.TemplateError) -> InputError:
    """The refusal of a templated parameter that Airflow's Jinja could not render: a variable it does
    not know (Airflow fills in a run's context only for a try of a DAG run), or text it can't parse."""
    if isinstance(exc, jinja2.UndefinedError):
        return InputError(f"a templated parameter did not render with Airflow's Jinja: {exc.message}. If it names "
                          "one of Airflow's context variables ({{ ds }}, {{ run_id }}, {{ params.x }}, ...), those "
                          "are filled in for a try of a DAG run only: run the task in one (a trigger, or airflow "
                          "dags test <dag> <date>), or give the value in params=. If the braces are text: a row's "
                          f"field is written {{field}}, with single braces; {LITERAL_BRACES}")
    return InputError(f"a templated parameter did not render with Airflow's Jinja ({type(exc).__name__}: {exc}). "
                      f"A row's field is written {{field}}, with single braces; {LITERAL_BRACES}")
