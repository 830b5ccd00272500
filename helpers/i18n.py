"""The helpers' words in the reader's language: gettext catalogues, English as the fallback, a CJK font for plots.

Which language: ``AML_LANG`` (``make run LANG=de`` and ``make lab LANG=de`` set it), else the notebook folder the
kernel runs in (``notebooks-de/``, ``notebooks-zh_TW/v2/``...), else English.  What is translated: what the helpers
print and draw, and the errors they raise for a student.  What is not: messages of azureml-core, azure-ai-ml,
Keras and the local workspace's Azure-shaped errors, which stay in the words a student searches for.

Messages are marked ``_("...")`` in the helpers; ``locales/templates/helpers.pot`` is extracted from them with
Babel (``make translations``), ``locales/<lang>/LC_MESSAGES/helpers.po`` holds each language's, compiled to ``.mo``.
"""

from __future__ import annotations

import datetime as dt
import gettext
import io
import json
import os
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCALES = ROOT / "locales"
DOMAIN = "helpers"
# The font Traditional Chinese plots are drawn in: Noto Sans CJK TC, from the noto-cjk-sans-otc package
CJK_FAMILY = "Noto Sans CJK TC"
# Fixed so that extracting twice writes the same bytes (the templates are checked like the locks)
_CREATION = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)


class LanguageError(ValueError):
    """A language the walkthrough has no translation for."""


@dataclass(frozen=True)
class Language:
    code: str  # gettext's name: the catalogue folder, notebooks-<code>/, make run LANG=<code>
    name: str  # in the language itself
    learn: str  # Microsoft Learn's locale in its URLs
    jupyterlab: str  # the JupyterLab language pack's locale


LANGUAGES = {
    lang.code: lang
    for lang in (
        Language("de", "Deutsch", "de-de", "de_DE"),
        Language("hu", "Magyar", "hu-hu", "hu_HU"),
        Language("pt_BR", "Português (Brasil)", "pt-br", "pt_BR"),
        Language("zh_TW", "繁體中文", "zh-tw", "zh_TW"),
    )
}


def language(value: str | None) -> Language | None:
    """The language a setting names (``de``, ``pt-BR``, ``zh_TW.UTF-8``); None for English (empty, ``en``, ``C``)."""
    if not value:
        return None
    code = value.split(".")[0].split("@")[0].replace("-", "_")
    if code in ("", "C", "POSIX") or code.lower().startswith("en"):
        return None
    for lang in LANGUAGES.values():
        if code.lower() in (lang.code.lower(), lang.jupyterlab.lower()):
            return lang
    known = ", ".join(LANGUAGES)
    raise LanguageError(f"No translation for {value!r}: the walkthrough exists in English (en) and {known}.")


def current_language() -> str | None:
    """The gettext code of the reader's language (``de``, ``zh_TW``...), or None for English."""
    setting = os.environ.get("AML_LANG")
    if setting is not None:
        lang = language(setting)
        return lang.code if lang else None
    cwd = Path.cwd()
    for folder in (cwd, *cwd.parents[:2]):
        if folder.name.startswith("notebooks-") and folder.name[len("notebooks-") :] in LANGUAGES:
            return folder.name[len("notebooks-") :]
    return None


@cache
def _translations(code: str | None) -> gettext.NullTranslations:
    if code is None:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, localedir=LOCALES, languages=[code], fallback=True)


def translation(code: str | None) -> gettext.NullTranslations:
    """The helpers' catalogue of one language (None: English)."""
    return _translations(code)


def _(message: str) -> str:
    """``message`` in the reader's language; the English itself where there is no translation."""
    return _translations(current_language()).gettext(message)


def N_(message: str) -> str:
    """Mark a message for the catalogue without translating it here (a title the notebooks pass in English)."""
    return message


def use_language_font() -> None:
    """Let matplotlib draw the reader's script: Noto Sans CJK TC first for Traditional Chinese."""
    if current_language() != "zh_TW":
        return
    import matplotlib as mpl
    from matplotlib import font_manager

    if not any(f.name == CJK_FAMILY for f in font_manager.fontManager.ttflist):
        try:
            from noto_cjk_sans_otc import FONT_PATH
        except ImportError:  # an environment without the project's lock: the plots keep English-capable fonts
            return
        font_manager.fontManager.addfont(str(FONT_PATH))
    families = list(mpl.rcParams["font.sans-serif"])
    if families[:1] != [CJK_FAMILY]:
        mpl.rcParams["font.sans-serif"] = [CJK_FAMILY, *[f for f in families if f != CJK_FAMILY]]
    mpl.rcParams["font.family"] = ["sans-serif"]


# -- for make translations ---------------------------------------------------------------------------------------


def empty_template(about: str):
    """A Babel catalogue with this project's header, dated ``_CREATION``: written twice, the same bytes."""
    from babel.messages.catalog import Catalog

    return Catalog(
        project="azureml-keras-mnist",
        version="1",
        copyright_holder="azureml-keras-mnist contributors",
        msgid_bugs_address="https://github.com/azureml-keras-mnist/issues",
        creation_date=_CREATION,
        revision_date=_CREATION,
        fuzzy=False,
        header_comment=f"# {about}, for translation (make translations writes this file).\n#",
    )


def template():
    """The Babel catalogue of every message the helpers mark with ``_`` or ``N_``."""
    from babel.messages.extract import extract_from_dir

    catalog = empty_template("What the helpers print and draw")
    for filename, lineno, message, comments, context in extract_from_dir(
        str(ROOT / "helpers"),
        method_map=[("**.py", "python")],
        keywords={"_": None, "N_": None},
        comment_tags=("TRANSLATORS:",),
        strip_comment_tags=True,
    ):
        catalog.add(message, None, [(f"helpers/{filename}", lineno)], auto_comments=comments, context=context)
    return catalog


def compile_catalogue(code: str) -> list[Path]:
    """Compile locales/<code>/LC_MESSAGES/helpers.po to .mo (only when it changed); returns what was written."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    po = LOCALES / code / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not po.exists():
        return []
    with po.open("rb") as f:
        catalog = read_po(f, locale=code)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    mo = po.with_suffix(".mo")
    if not write_if_changed(mo, buffer.getvalue()):
        return []
    _translations.cache_clear()
    return [mo]


def write_if_changed(path: Path, data: bytes) -> bool:
    """Replace ``path`` with ``data`` atomically (no half-written catalogue or notebook); False if it already was."""
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return True


# -- make lab LANG=... -------------------------------------------------------------------------------------------


def notebook_folder(code: str | None) -> Path:
    """notebooks/ for English, notebooks-<code>/ for a translation."""
    return ROOT / (f"notebooks-{code}" if code else "notebooks")


def lab_settings(lang: Language) -> Path:
    """A JupyterLab settings folder that shows JupyterLab's own interface in ``lang`` (its language pack).

    build/lab-settings/<code>/: the user's settings of that language's JupyterLab, kept between launches; only the
    display language is written, the rest is JupyterLab's to keep."""
    folder = ROOT / "build" / "lab-settings" / lang.code
    plugin = folder / "@jupyterlab" / "translation-extension" / "plugin.jupyterlab-settings"
    plugin.parent.mkdir(parents=True, exist_ok=True)
    plugin.write_text(json.dumps({"locale": lang.jupyterlab}, indent=4) + "\n", encoding="utf-8")
    return folder


#: The name JupyterLab's pages know the CJK font by (make lab LANG=zh_TW serves it: lab_config)
CJK_WEB_FAMILY = "Noto Sans CJK TC (walkthrough)"
_CJK_RANGES = "U+2E80-2FFF, U+3000-303F, U+3100-312F, U+3400-4DBF, U+4E00-9FFF, U+F900-FAFF, U+FE30-FE4F, U+FF00-FFEF"
CUSTOM_CSS = f"""/* Written by make lab (helpers/i18n.py): Traditional Chinese in any browser, in the install's font.
   unicode-range: the browser fetches the font only for Chinese characters, and only where its own fonts lack them. */
@font-face {{
  font-family: "{CJK_WEB_FAMILY}";
  src: url("NotoSansCJKtc-Regular.otf") format("opentype");
  unicode-range: {_CJK_RANGES};
}}
body {{  /* not :root, which the theme, loaded later, sets */
  --jp-ui-font-family: system-ui, -apple-system, blinkmacsystemfont, "Segoe UI", helvetica, arial, "{CJK_WEB_FAMILY}",
    sans-serif, "Apple Color Emoji", "Segoe UI Emoji", "Segoe UI Symbol";
  --jp-content-font-family: system-ui, -apple-system, blinkmacsystemfont, "Segoe UI", helvetica, arial,
    "{CJK_WEB_FAMILY}", sans-serif, "Apple Color Emoji", "Segoe UI Emoji", "Segoe UI Symbol";
  --jp-code-font-family: menlo, consolas, "DejaVu Sans Mono", "{CJK_WEB_FAMILY}", monospace;
}}
"""


def write_lab_fonts(config_dir: Path) -> Path:
    """Put the CJK font and a custom.css that uses it in ``config_dir/custom`` (JupyterLab serves that folder with
    ``--LabApp.custom_css=True``): Chinese prose renders in a browser without a CJK font of its own."""
    custom = config_dir / "custom"
    custom.mkdir(parents=True, exist_ok=True)
    font = custom / "NotoSansCJKtc-Regular.otf"
    if not font.exists():
        from fontTools.ttLib import TTCollection
        from noto_cjk_sans_otc import FONT_PATH

        collection = TTCollection(str(FONT_PATH), lazy=True)
        face = next(f for f in collection.fonts if f["name"].getDebugName(1) == CJK_FAMILY)
        tmp = font.with_name(font.name + ".tmp")
        face.save(str(tmp))
        tmp.replace(font)
    (custom / "custom.css").write_text(CUSTOM_CSS, encoding="utf-8")
    return custom


def jupyterlab_messages(lang: Language) -> int:
    """How many of JupyterLab's own messages its language pack for ``lang`` translates (0 without the pack)."""
    from importlib.resources import files

    try:
        pack = files(f"jupyterlab_language_pack_{lang.jupyterlab}")
    except ModuleNotFoundError:
        return 0
    path = pack / "locale" / lang.jupyterlab / "LC_MESSAGES" / "jupyterlab.json"
    return len(json.loads(path.read_text(encoding="utf-8"))) - 1 if path.is_file() else 0


def lab(argv: list[str]) -> None:
    """Open JupyterLab in the notebooks of ``AML_LANG``'s language (English: notebooks/), interface included."""
    try:
        lang = language(os.environ.get("AML_LANG"))
    except LanguageError as exc:
        raise SystemExit(str(exc)) from None
    folder = notebook_folder(lang.code if lang else None)
    env = dict(os.environ)
    if lang:
        env["AML_LANG"] = lang.code
        env["JUPYTERLAB_SETTINGS_DIR"] = str(lab_settings(lang))
        if lang.code == "zh_TW":  # the browser may have no CJK font: JupyterLab serves the install's
            config = ROOT / "build" / "lab-config" / lang.code
            write_lab_fonts(config)
            env["JUPYTER_CONFIG_DIR"] = str(config)
            argv = ["--LabApp.custom_css=True", *argv]
        print(f"JupyterLab in {lang.name}: {folder.relative_to(ROOT)}/", flush=True)
        if jupyterlab_messages(lang) < 100:
            print(
                f"JupyterLab's own {lang.name} translation is (nearly) empty in its language pack "
                f"(jupyterlab-language-pack-{lang.jupyterlab.lower().replace('_', '-')}): its menus stay English.",
                flush=True,
            )
    else:
        env.pop("AML_LANG", None)
    jupyter = Path(sys.executable).with_name("jupyter")
    os.chdir(folder)
    os.execve(jupyter, [str(jupyter), "lab", *argv], env)


if __name__ == "__main__":
    if sys.argv[1:2] != ["lab"]:
        raise SystemExit("usage: python -m helpers.i18n lab [jupyter lab options]")
    lab(sys.argv[2:])
