"""The walkthrough in other languages, from one English source: extract, update, build, check.

The English notebooks (``notebooks/``) are the only place the code lives.  Their prose, the markdown cells, is cut
into paragraphs (headings, list items, table cells) by mdpo, which parses Markdown with md4c and keeps inline
markup (backticks, links, emphasis) inside each entry, and the paragraphs become gettext catalogues:

- ``locales/templates/<path>.pot``: what there is to translate, one template per notebook, plus the parts of
  README.md and INSTRUCTORS.md that exist in every language (``DOC_SECTIONS``);
- ``locales/<lang>/<path>.po``: one catalogue per notebook and language, written by translators;
- ``locales/<lang>/LC_MESSAGES/helpers.po`` and ``.mo``: what the helpers print and draw (``helpers.i18n``).

``build`` writes ``notebooks-<lang>/``: each English notebook with only its markdown cells replaced, so code cells
(comments included), cell ids and metadata stay byte for byte the English ones.  The folders sit beside
``notebooks/``, at the same depth, so the code's relative paths (``../scripts``) and the prose's links
(``../docs/glossary.md``) mean the same file; links to Microsoft Learn get the reader's locale.

Commands (``make translations`` runs extract, update and build; ``make test`` runs ``check``'s tests)::

    python -m helpers.translations extract   # English changed: rewrite the templates
    python -m helpers.translations update    # merge the templates into each language's catalogues
    python -m helpers.translations build     # write notebooks-<lang>/ and compile the helpers' catalogues
    python -m helpers.translations check     # what tests/test_translations.py checks, as a list of problems
"""

from __future__ import annotations

import argparse
import datetime
import io
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import nbformat

from helpers import i18n
from helpers.i18n import _CREATION, LANGUAGES, Language, LanguageError

ROOT, LOCALES = i18n.ROOT, i18n.LOCALES
TEMPLATES = LOCALES / "templates"
# The helpers' own catalogue: its template, and its name in each language's folder
HELPERS_TEMPLATE = "helpers.pot"
HELPERS_CATALOGUE = f"LC_MESSAGES/{i18n.DOMAIN}.po"
NOTEBOOKS = ROOT / "notebooks"
LEARN = "https://learn.microsoft.com/"


# The parts of the English docs that exist in every language: file -> its level-2 headings, in order
DOC_SECTIONS = {
    "README.md": ["Quick start"],
    "INSTRUCTORS.md": [
        "Names in a shared workspace",
        "A 3-hour workshop",
        "Resetting between groups",
        "The ten most likely problems",
    ],
}

GENERATED = (
    "<!-- Written by `make translations` from {source} and locales/{lang}/{catalogue}: edit those, not this file. -->"
)


class TranslationError(Exception):
    """A catalogue, a glossary or an English doc the translation tools cannot work with."""


def english_notebooks() -> list[Path]:
    """The English notebooks, as paths relative to notebooks/ (checkpoints left out)."""
    return sorted(p.relative_to(NOTEBOOKS) for p in NOTEBOOKS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def sources() -> list[str]:
    """Everything that has a catalogue, as paths relative to the project: notebooks, then docs."""
    return [f"notebooks/{p.as_posix()}" for p in english_notebooks()] + list(DOC_SECTIONS)


def catalogue_name(source: str) -> str:
    """notebooks/v2/03-train.ipynb -> notebooks/v2/03-train.po; README.md -> README.po"""
    return str(Path(source).with_suffix(".po").as_posix())


def template_path(source: str) -> Path:
    return TEMPLATES / Path(catalogue_name(source)).with_suffix(".pot")


def catalogue_path(lang: str, source: str) -> Path:
    return LOCALES / lang / catalogue_name(source)


def output_path(lang: str, source: str) -> Path:
    """Where the translated file goes: notebooks-<lang>/<same path>; the docs' parts go in notebooks-<lang>/ too."""
    path = Path(source)
    if path.parts[0] == "notebooks":
        return i18n.notebook_folder(lang) / Path(*path.parts[1:])
    return i18n.notebook_folder(lang) / path.name


# -- the prose of one source ------------------------------------------------------------------------------------


def doc_markdown(source: str) -> str:
    """The title and the sections of an English doc that are translated, in order, as one Markdown text."""
    text = (ROOT / source).read_text(encoding="utf-8")
    parts = re.split(r"(?m)^(?=## )", text)
    title = next(line for line in text.splitlines() if line.startswith("# "))
    by_heading = {part.splitlines()[0][3:].strip(): part for part in parts if part.startswith("## ")}
    missing = [h for h in DOC_SECTIONS[source] if h not in by_heading]
    if missing:
        raise TranslationError(
            f"{source} has no section {missing[0]!r} any more: update DOC_SECTIONS in helpers/translations.py."
        )
    return "\n".join([title + "\n", *(by_heading[h].rstrip() + "\n" for h in DOC_SECTIONS[source])])


def markdown_blocks(source: str) -> list[tuple[str, str]]:
    """(where, markdown) for each piece of prose of a source: a notebook's markdown cells, or a doc's sections."""
    if source.startswith("notebooks/"):
        nb = nbformat.read(ROOT / source, as_version=4)
        return [(f"cell {cell.id}", cell.source) for cell in nb.cells if cell.cell_type == "markdown"]
    return [(source, doc_markdown(source))]


def paragraphs(markdown: str, codeblocks: bool = False) -> list[str]:
    """The msgids mdpo cuts a Markdown text into (code blocks too for the docs, whose commands have comments)."""
    from mdpo.md2po import markdown_to_pofile

    entries = markdown_to_pofile(markdown, location=False, wrapwidth=0, include_codeblocks=codeblocks)
    return [entry.msgid for entry in entries]


def template(source: str):
    """The Babel catalogue of a source's prose: one message per paragraph, each saying where it occurs."""
    catalog = i18n.empty_template(f"The prose of {source}")
    for where, markdown in markdown_blocks(source):
        for msgid in paragraphs(markdown, codeblocks=not source.startswith("notebooks/")):
            if msgid in catalog:
                message = catalog[msgid]
                message.auto_comments = [*message.auto_comments, f"{source} {where}"]
            else:
                message = catalog.add(msgid, auto_comments=[f"{source} {where}"])
                message.flags.discard("python-format")  # prose: "98% of" is not a format string
    return catalog


# One line per string and per comment: with width=0 Babel still wraps "#| msgid" comments at 76 columns, into lines
# that neither polib nor Babel read back as the previous msgid
_NO_WRAP = 10**9


def _rel(path: Path) -> Path:
    """A path as messages name it: relative to the project when it is in it."""
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def _write(catalog, path: Path, **kwargs) -> bool:
    """Write a catalogue atomically; True if the file changed."""
    from babel.messages.pofile import write_po

    buffer = io.BytesIO()
    write_po(buffer, catalog, width=_NO_WRAP, sort_output=False, include_lineno=False, **kwargs)
    return i18n.write_if_changed(path, buffer.getvalue())


def _read(path: Path, locale: str | None = None):
    from babel.messages.pofile import read_po

    with path.open("rb") as f:
        try:
            return read_po(f, locale=locale, abort_invalid=True)
        except Exception as exc:  # Babel's PoFileError and friends: name the file and line
            raise TranslationError(f"{_rel(path)}: not a valid catalogue: {exc}") from exc


# -- extract, update ---------------------------------------------------------------------------------------------


def extract() -> list[Path]:
    """Rewrite locales/templates/ from the English sources (and helpers.pot from the helpers' code)."""
    changed = []
    wanted = set()
    for source in sources():
        path = template_path(source)
        wanted.add(path)
        if _write(template(source), path, omit_header=False):
            changed.append(path)
    path = TEMPLATES / HELPERS_TEMPLATE
    wanted.add(path)
    if _write(i18n.template(), path, omit_header=False):
        changed.append(path)
    for stale in TEMPLATES.rglob("*.pot"):
        if stale not in wanted:  # its English source is gone
            stale.unlink()
            changed.append(stale)
    return changed


def update(langs: list[str] | None = None, only: set[str] | None = None) -> list[Path]:
    """Merge each template into each language's catalogue: new paragraphs untranslated, changed ones fuzzy.

    ``only``: the catalogue names to merge (``{HELPERS_CATALOGUE}``); all by default."""
    from babel.messages.catalog import Catalog

    changed = []
    templates = {template_path(s): catalogue_name(s) for s in sources()}
    templates[TEMPLATES / HELPERS_TEMPLATE] = HELPERS_CATALOGUE
    for code in langs or list(LANGUAGES):
        for pot, name in templates.items():
            if only is not None and name not in only:
                continue
            tmpl = _read(pot)
            path = LOCALES / code / name
            if path.exists():
                catalog = _read(path, locale=code)
            else:
                catalog = Catalog(locale=code, project=tmpl.project, creation_date=_CREATION, fuzzy=False)
            catalog.update(tmpl, update_header_comment=True)
            if name != HELPERS_CATALOGUE:  # prose, not format strings: Babel guesses "10% of" is one
                for message in catalog:
                    if message.id:
                        message.flags.discard("python-format")
            catalog.header_comment = tmpl.header_comment.replace("for translation", f"in {LANGUAGES[code].name}")
            catalog.fuzzy = False
            if not isinstance(catalog.revision_date, datetime.datetime):  # Babel's placeholder: msgfmt -c warns
                catalog.revision_date = _CREATION
            catalog.last_translator = "azureml-keras-mnist translators"
            catalog.language_team = f"{LANGUAGES[code].name} ({code})"
            if _write(catalog, path, include_previous=True, ignore_obsolete=True):
                changed.append(path)
    return changed


# -- build -------------------------------------------------------------------------------------------------------


def _translations(path: Path):
    """polib's view of a catalogue (what mdpo translates with), fuzzy entries emptied: until a translator has
    checked a changed paragraph, readers get the new English, not the old paragraph's translation."""
    import polib

    pofile = polib.pofile(str(path))
    for entry in pofile:
        if "fuzzy" in entry.flags:
            entry.msgstr = ""
    return pofile


def translate_markdown(markdown: str, pofile) -> str:
    """A Markdown text with each paragraph replaced by its translation (English where there is none)."""
    from mdpo.po2md import Po2Md

    translator = Po2Md([], wrapwidth=0)
    translator.pofiles = [pofile]
    return translator.translate(markdown).rstrip("\n")


_LINK = re.compile(r"(\]\()(<[^>]*>|[^()\s]*(?:\([^()\s]*\)[^()\s]*)*)((?:\s+\"[^\"]*\")?\))")


def rewrite_links(markdown: str, source: str, lang: Language) -> str:
    """Links of the translated text: Microsoft Learn in the reader's locale, relative links from the new place.

    A relative link into a translated file goes to that language's copy; one with an #anchor keeps the English
    file (a translated heading has another anchor).
    """
    src_dir = (ROOT / source).parent
    out_dir = output_path(lang.code, source).parent
    translated = set(sources())

    def fix(match: re.Match) -> str:
        target = match.group(2)
        if target.startswith(LEARN):
            rest = target[len(LEARN) :]
            rest = re.sub(r"^[a-z]{2}-[a-z]{2}/", "", rest)
            return f"{match.group(1)}{LEARN}{lang.learn}/{rest}{match.group(3)}"
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith(("#", "<")):
            return match.group(0)
        path, _, anchor = target.partition("#")
        absolute = (src_dir / path).resolve()
        try:
            rel = absolute.relative_to(ROOT).as_posix()
        except ValueError:
            return match.group(0)
        if not anchor and rel in translated:
            absolute = output_path(lang.code, rel)
        new = Path(os.path.relpath(absolute, out_dir)).as_posix() + (f"#{anchor}" if anchor else "")
        return f"{match.group(1)}{new}{match.group(3)}"

    def autolink(match: re.Match) -> str:  # <docs/azure.md>, mdpo's form of [docs/azure.md](docs/azure.md)
        target = match.group(1)
        return f"[{target}" + fix(re.match(r"(\]\()(.*)(\))", f"]({target})"))

    markdown = re.sub(r"<([\w./-]+\.(?:md|ipynb)(?:#[\w-]+)?)>", autolink, markdown)
    return _LINK.sub(fix, markdown)


def build_notebook(source: str, lang: Language) -> str:
    """The translated notebook's JSON text: the English one with its markdown cells translated."""
    nb = nbformat.read(ROOT / source, as_version=4)
    pofile = _translations(catalogue_path(lang.code, source))
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = rewrite_links(translate_markdown(cell.source, pofile), source, lang)
    return nbformat.writes(nb) + "\n"


def build_doc(source: str, lang: Language) -> str:
    pofile = _translations(catalogue_path(lang.code, source))
    text = rewrite_links(translate_markdown(doc_markdown(source), pofile), source, lang)
    # The docs name the English folder and commands: the reader's are notebooks-<lang>/ and make ... LANG=<lang>
    text = re.sub(r"(?<![\w-])notebooks/", f"notebooks-{lang.code}/", text)

    def with_lang(match: re.Match) -> str:  # "make lab       # ..." keeps its comment's column where it can
        command, pad = f"make {match.group(1)} LANG={lang.code}", match.group(2)
        return command + (" " * max(1, len(pad) - len(f" LANG={lang.code}")) if pad else "")

    text = re.sub(r"\bmake (run|lab)\b(?! LANG)( *)", with_lang, text)
    header = GENERATED.format(source=source, lang=lang.code, catalogue=catalogue_name(source))
    return f"{header}\n\n{text}\n"


def built(lang: Language) -> dict[Path, str]:
    """Every file of notebooks-<lang>/ as the sources and catalogues make it."""
    files = {}
    for source in sources():
        if source.startswith("notebooks/"):
            files[output_path(lang.code, source)] = build_notebook(source, lang)
        else:
            files[output_path(lang.code, source)] = build_doc(source, lang)
    return files


def build(langs: list[str] | None = None) -> list[Path]:
    """Write notebooks-<lang>/ for each language, and compile the helpers' catalogues; returns what changed."""
    changed = []
    for code in langs or list(LANGUAGES):
        lang = LANGUAGES[code]
        files = built(lang)
        for path, text in files.items():
            if i18n.write_if_changed(path, text.encode("utf-8")):
                changed.append(path)
        out = i18n.notebook_folder(code)
        for stale in [p for p in out.rglob("*") if p.is_file() and p.suffix in (".ipynb", ".md")]:
            if stale not in files and ".ipynb_checkpoints" not in stale.parts:
                stale.unlink()
                changed.append(stale)
        changed += i18n.compile_catalogue(code)
    return changed


# -- check -------------------------------------------------------------------------------------------------------

_BACKTICKS = re.compile(r"(`+)(.+?)\1", re.S)
_TARGETS = re.compile(r"\]\(([^)\s]*)")
_PLACEHOLDER = re.compile(r"\{[A-Za-z_0-9.!:<>^,+-]*\}|%(?:\([a-z_]+\))?[sdfr]")
# A number, with thousands separators (5,000 5.000 5 000) or a decimal part (0.94 0,94); "06, 07" is two numbers
_NUMBER = re.compile(r"\d+(?:[.,\u00a0\u202f ]\d{3}(?!\d))*(?:[.,]\d+)?")


def _strip_markup(text: str) -> str:
    """Prose without code spans, link targets and placeholders (for the glossary and do-not-translate checks)."""
    text = _PLACEHOLDER.sub(" ", _BACKTICKS.sub(" ", text))
    return re.sub(r"\]\([^)]*\)", "]", text)


def _numbers(text: str) -> Counter:
    """Numbers outside code spans, written without separators (German 5.000, Hungarian 5 000 = English 5,000)."""
    text = re.sub(r"\]\([^)]*\)", "]", _BACKTICKS.sub(" ", text))
    return Counter(re.sub(r"[.,\u00a0\u202f ]", "", n) for n in _NUMBER.findall(text))


@dataclass(frozen=True)
class Term:
    english: str
    translations: tuple[str, ...]  # any one of them (forms: plural, case) counts
    checked: bool


def glossary(code: str) -> list[Term]:
    """locales/<lang>/glossary.tsv: English term, translation(s) separated by |, checked (yes/no), source note."""
    path = LOCALES / code / "glossary.tsv"
    terms = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#") or n == 1:
            continue
        cells = line.split("\t")
        if len(cells) < 3:
            raise TranslationError(f"{_rel(path)}:{n}: want term<TAB>translation<TAB>checked<TAB>note")
        terms.append(Term(cells[0].strip(), tuple(t.strip() for t in cells[1].split("|")), cells[2].strip() == "yes"))
    return terms


def do_not_translate() -> list[str]:
    path = LOCALES / "do-not-translate.txt"
    return [
        line.strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]


def _markup(text: str) -> Counter:
    """The inline elements a Markdown paragraph renders to (CommonMark, as JupyterLab and GitHub render it)."""
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark").render(text)
    return Counter(re.findall(r"<(strong|em|code|a|img)\b", html))


def entry_problems(msgid: str, msgstr: str, terms: list[Term], keep: list[str]) -> list[str]:
    """What a translation of one paragraph lost: code spans, link targets, placeholders, numbers, terms."""
    problems = []
    for what, find in (
        ("code spans", lambda text: Counter(m.group(0) for m in _BACKTICKS.finditer(text))),
        ("link targets", lambda text: Counter(_TARGETS.findall(text))),
        ("placeholders", lambda text: Counter(_PLACEHOLDER.findall(text))),
    ):
        english, translated = find(msgid), find(msgstr)
        if english != translated:
            lost, added = sorted((english - translated).elements()), sorted((translated - english).elements())
            problems.append(f"the {what} differ from the English: missing {lost}, not in the English {added}")
    if _numbers(msgid) != _numbers(msgstr):
        english, translated = _numbers(msgid), _numbers(msgstr)
        problems.append(
            f"the numbers outside code spans differ: missing {sorted((english - translated).elements())}, "
            f"not in the English {sorted((translated - english).elements())}"
        )
    if _markup(msgid) != _markup(msgstr):
        problems.append(
            f"the emphasis, code or links render differently from the English (CommonMark: {dict(_markup(msgid))} in "
            f"English, {dict(_markup(msgstr))} here): a ** or * between punctuation and a letter stays literal, so "
            "put punctuation outside it (**目前位置**：, not **目前位置：**)"
        )
    prose_en, prose = _strip_markup(msgid), _strip_markup(msgstr)
    for word in keep:
        if re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", prose_en) and word not in prose:
            problems.append(f"{word!r} is not to be translated")
    for term in terms:
        if term.checked and re.search(rf"(?<![\w-]){re.escape(term.english)}s?(?![\w-])", prose_en, re.I):
            if not any(t.lower() in prose.lower() for t in term.translations):
                problems.append(f"glossary: {term.english!r} is {' or '.join(term.translations)!r}")
    return problems


def catalogue_problems(path: Path, pot: Path, code: str) -> list[str]:
    """Everything wrong with one catalogue, each as 'file: entry: problem'."""
    rel = _rel(path)
    if not path.exists():
        return [f"{rel}: missing: run make translations, then translate it"]
    catalog = _read(path, locale=code)
    tmpl = _read(pot)
    problems = []
    ids = {m.id for m in catalog if m.id}
    wanted = {m.id for m in tmpl if m.id}
    for msgid in sorted(wanted - ids, key=str):
        problems.append(f"{rel}: {_short(msgid)}: not in the catalogue: run make translations")
    terms, keep = glossary(code), do_not_translate()
    for message in catalog:
        if not message.id or message.id not in wanted:
            continue
        where = f"{rel}: {_short(message.id)}"
        if message.fuzzy:
            problems.append(f"{where}: fuzzy: the English changed; check the translation, then remove the fuzzy flag")
        elif not message.string:
            problems.append(f"{where}: untranslated")
        else:
            msgid = message.id if isinstance(message.id, str) else message.id[0]
            msgstr = message.string if isinstance(message.string, str) else message.string[0]
            problems += [f"{where}: {p}" for p in entry_problems(msgid, msgstr, terms, keep)]
    problems += [f"{rel}: {p}" for p in msgfmt_problems(path)]
    return problems


def msgfmt_problems(path: Path) -> list[str]:
    """GNU msgfmt -c's complaints (format strings, header, plurals), where msgfmt is installed."""
    msgfmt = shutil.which("msgfmt")
    if not msgfmt:
        return []
    result = subprocess.run([msgfmt, "-c", "-o", "/dev/null", str(path)], capture_output=True, text=True)
    return [line for line in result.stderr.splitlines() if line.strip()] if result.returncode else []


def _short(msgid) -> str:
    text = msgid if isinstance(msgid, str) else msgid[0]
    return repr(text if len(text) <= 60 else text[:57] + "...")


def stale_templates() -> list[str]:
    """Templates that differ from what the English sources give now."""
    from babel.messages.pofile import write_po

    problems = []
    pairs = [(template_path(s), lambda s=s: template(s)) for s in sources()]
    pairs.append((TEMPLATES / HELPERS_TEMPLATE, i18n.template))
    for path, make in pairs:
        buffer = io.BytesIO()
        write_po(buffer, make(), width=_NO_WRAP, sort_output=False, omit_header=False, include_lineno=False)
        if not path.exists() or path.read_bytes() != buffer.getvalue():
            problems.append(f"{_rel(path)}: not in step with the English: run make translations")
    return problems


def stale_outputs(code: str) -> list[str]:
    """Files of notebooks-<lang>/ that differ from what the sources and catalogues build."""
    lang = LANGUAGES[code]
    problems = []
    for path, text in built(lang).items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            problems.append(f"{_rel(path)}: not in step with its source and catalogue: run make translations")
    return problems


def check(langs: list[str] | None = None) -> list[str]:
    problems = stale_templates()
    for code in langs or list(LANGUAGES):
        for source in sources():
            problems += catalogue_problems(catalogue_path(code, source), template_path(source), code)
        problems += catalogue_problems(LOCALES / code / HELPERS_CATALOGUE, TEMPLATES / HELPERS_TEMPLATE, code)
        problems += stale_outputs(code)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.translations", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["extract", "update", "build", "all", "check"])
    parser.add_argument("--lang", action="append", choices=list(LANGUAGES), help="only this language (repeatable)")
    args = parser.parse_args(argv)
    try:
        if args.command in ("extract", "all"):
            for path in extract():
                print(f"template: {_rel(path)}")
        if args.command in ("update", "all"):
            for path in update(args.lang):
                print(f"catalogue: {_rel(path)}")
        if args.command in ("build", "all"):
            for path in build(args.lang):
                print(f"written: {_rel(path)}")
        if args.command in ("check", "all"):
            problems = check(args.lang)
            for problem in problems:
                print(problem)
            if problems:
                print(f"\n{len(problems)} problems", file=sys.stderr)
                return 1
    except (LanguageError, TranslationError) as exc:  # a bad catalogue or glossary: one line naming the file
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
