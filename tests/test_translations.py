"""The translations (helpers/translations.py, helpers/i18n.py): one English source, four languages, in step.

Each translated notebook has the English one's code cells byte for byte and its cell ids; every file of
notebooks-<lang>/ is what the English source and the language's catalogue build (a stale one fails, like the
locks); every catalogue is complete, compiles with msgfmt -c, and keeps each paragraph's code spans, link targets,
placeholders and numbers, the do-not-translate names and the glossary's terms. The checks themselves are shown to
fail on a bad catalogue.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess

import nbformat
import numpy as np
import pytest

from helpers import i18n, translations
from helpers.i18n import LANGUAGES, LanguageError, language
from helpers.translations import ROOT, catalogue_path, entry_problems, sources

LANGS = list(LANGUAGES)


def _report(problems: list[str], what: str) -> str:
    shown = "\n".join(problems[:40])
    more = f"\n... and {len(problems) - 40} more" if len(problems) > 40 else ""
    return f"{len(problems)} {what}:\n{shown}{more}\n(python -m helpers.translations check lists them all)"


def test_templates_are_in_step_with_the_english():
    problems = translations.stale_templates()
    assert not problems, _report(problems, "templates out of step: run make translations")


@pytest.mark.parametrize("lang", LANGS)
def test_catalogues_are_complete_and_keep_what_must_not_change(lang):
    problems = []
    for source in sources():
        problems += translations.catalogue_problems(
            catalogue_path(lang, source), translations.template_path(source), lang
        )
    problems += translations.catalogue_problems(
        translations.LOCALES / lang / translations.HELPERS_CATALOGUE,
        translations.TEMPLATES / translations.HELPERS_TEMPLATE,
        lang,
    )
    assert not problems, _report(problems, f"problems in locales/{lang}/")


@pytest.mark.parametrize("lang", LANGS)
def test_translated_files_are_in_step_with_sources_and_catalogues(lang):
    problems = translations.stale_outputs(lang)
    assert not problems, _report(problems, f"stale files in notebooks-{lang}/")


@pytest.mark.parametrize("lang", LANGS)
def test_code_cells_and_ids_are_the_english_ones(lang):
    translated_prose = total_prose = 0
    for path in translations.english_notebooks():
        english = json.loads((ROOT / "notebooks" / path).read_text(encoding="utf-8"))
        ours = json.loads((ROOT / f"notebooks-{lang}" / path).read_text(encoding="utf-8"))
        assert [c["id"] for c in ours["cells"]] == [c["id"] for c in english["cells"]], f"{lang}/{path}: cell ids"
        assert ours["metadata"] == english["metadata"], f"{lang}/{path}: notebook metadata"
        for mine, theirs in zip(ours["cells"], english["cells"], strict=True):
            assert mine["cell_type"] == theirs["cell_type"], f"{lang}/{path} cell {theirs['id']}: type"
            if theirs["cell_type"] == "code":
                assert mine == theirs, f"{lang}/{path} cell {theirs['id']}: a code cell differs from the English one"
            else:
                total_prose += 1
                translated_prose += mine["source"] != theirs["source"]
    # Every markdown cell is translated (a build that fell back to English would leave them equal)
    assert translated_prose == total_prose, f"{lang}: {total_prose - translated_prose} markdown cells are English"


@pytest.mark.parametrize("lang", LANGS)
def test_helpers_catalogue_is_compiled(lang):
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    po = translations.LOCALES / lang / "LC_MESSAGES" / "helpers.po"
    with po.open("rb") as f:
        catalog = read_po(f, locale=lang)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    assert po.with_suffix(".mo").read_bytes() == buffer.getvalue(), f"{po}: .mo is stale: run make translations"


@pytest.mark.skipif(not shutil.which("msgfmt"), reason="GNU gettext's msgfmt is not installed")
def test_msgfmt_check_fails_on_a_broken_catalogue(tmp_path):
    bad = tmp_path / "bad.po"
    bad.write_text(
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        '#, python-format\nmsgid "%(count)s runs"\nmsgstr "%(anzahl)s Ausführungen"\n',
        encoding="utf-8",
    )
    assert translations.msgfmt_problems(bad), "msgfmt -c accepted a catalogue whose placeholder was renamed"


GLOSSARY = [translations.Term("workspace", ("Arbeitsbereich",), True), translations.Term("run", ("Lauf",), False)]
MSGID = "Connect with `Workspace.from_config()` to the Azure ML workspace ([00](00-setup.ipynb)), 3 times."
GOOD = "Verbinden Sie sich mit `Workspace.from_config()` mit dem Azure ML-Arbeitsbereich ([00](00-setup.ipynb)), 3 Mal."


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("`Workspace.from_config()`", "Workspace.from_config()"), "code spans"),
        (("`Workspace.from_config()`", "`Workspace.from_config`"), "code spans"),
        (("(00-setup.ipynb)", "(01-dataset.ipynb)"), "link targets"),
        (("3 Mal", "drei Mal"), "numbers"),
        (("Azure ML-Arbeitsbereich", "Azure ML-Workspace"), "glossary"),
        (("Azure ML-", "Azure-ML-"), "not to be translated"),
    ],
)
def test_entry_checks_catch_what_a_translation_lost(change, problem):
    assert entry_problems(MSGID, GOOD, GLOSSARY, ["Azure ML"]) == []
    problems = entry_problems(MSGID, GOOD.replace(*change), GLOSSARY, ["Azure ML"])
    assert any(problem in p for p in problems), problems


def test_numbers_may_use_the_languages_separators():
    msgid = "The offline sample has 5,000 digits; accuracy 0.94."
    assert entry_problems(msgid, "Die Offline-Stichprobe hat 5.000 Ziffern; Genauigkeit 0,94.", [], []) == []
    assert entry_problems(msgid, "A minta 5 000 számjegyet tartalmaz; pontosság 0,94.", [], []) == []
    assert entry_problems(msgid, "A minta 500 számjegyet tartalmaz; pontosság 0,94.", [], [])


def test_a_changed_catalogue_makes_the_notebook_stale(tmp_path, monkeypatch):
    """Edit one translation without rebuilding: the check names the notebook (as it names a stale lock)."""
    import polib

    source = "notebooks/00-setup.ipynb"
    po = polib.pofile(str(catalogue_path("de", source)))
    entry = next(e for e in po if e.msgstr)
    entry.msgstr += " (geändert)"
    changed = tmp_path / "00-setup.po"
    po.save(str(changed))
    real = translations.catalogue_path
    monkeypatch.setattr(
        translations, "catalogue_path", lambda lang, src: changed if (lang, src) == ("de", source) else real(lang, src)
    )
    stale = translations.stale_outputs("de")
    assert [p for p in stale if p.startswith("notebooks-de/00-setup.ipynb")], stale


def test_a_changed_english_paragraph_needs_a_translator(tmp_path, monkeypatch):
    """A paragraph the English gained is 'not in the catalogue' until make translations and a translator act."""
    pot = tmp_path / "00-setup.pot"
    catalog = translations.template("notebooks/00-setup.ipynb")
    catalog.add("A sentence the English notebook just gained.")
    translations._write(catalog, pot, omit_header=False)
    problems = translations.catalogue_problems(catalogue_path("de", "notebooks/00-setup.ipynb"), pot, "de")
    assert any("just gained" in p and "not in the catalogue" in p for p in problems), problems


@pytest.mark.parametrize(
    ("value", "code"),
    [("de", "de"), ("de_DE.UTF-8", "de"), ("pt-BR", "pt_BR"), ("zh_TW", "zh_TW"), ("zh-TW", "zh_TW"), ("hu", "hu"),
     ("", None), ("en", None), ("C.UTF-8", None), ("en_US.UTF-8", None)],
)  # fmt: skip
def test_language_settings(value, code):
    lang = language(value)
    assert (lang.code if lang else None) == code


def test_an_unknown_language_is_a_clear_error():
    with pytest.raises(LanguageError, match=r"No translation for 'fr'.*English \(en\) and de, hu, pt_BR, zh_TW"):
        language("fr")


def test_helpers_speak_the_notebook_folders_language(monkeypatch):
    monkeypatch.delenv("AML_LANG", raising=False)
    monkeypatch.chdir(ROOT / "notebooks-hu" / "v2")
    assert i18n.current_language() == "hu"
    monkeypatch.chdir(ROOT / "notebooks")
    assert i18n.current_language() is None
    assert i18n._("Class balance") == "Class balance"
    for code in LANGS:
        monkeypatch.setenv("AML_LANG", code)
        assert i18n._("Class balance") not in ("", "Class balance"), code
        assert "{notebooks}" in i18n._("Run {notebooks} first.")


def test_a_missing_prerequisite_names_the_notebook_in_the_readers_language(monkeypatch):
    from azureml.exceptions import ComputeTargetException

    from helpers.prerequisites import MissingPrerequisite, made_by

    monkeypatch.setenv("AML_LANG", "de")
    with pytest.raises(MissingPrerequisite) as caught, made_by("02-compute.ipynb"):
        raise ComputeTargetException("ComputeTargetNotFound: cpu-cluster")
    message = str(caught.value)
    assert message.startswith("ComputeTargetNotFound: cpu-cluster")  # azureml-core's words stay as Azure writes them
    assert "02-compute.ipynb" in message and "Run 02-compute.ipynb first." not in message


def _title_band(fig) -> np.ndarray:
    """The figure rendered as the notebook shows it (PNG, tight box), as grey levels: its top tenth, the title."""
    import matplotlib.image as mpimg

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    image = mpimg.imread(io.BytesIO(buffer.getvalue()))[..., :3].mean(axis=2)
    return image[: max(1, image.shape[0] // 10)]


def test_traditional_chinese_titles_render_with_the_cjk_font(monkeypatch):
    """Chinese plot titles are drawn in Noto Sans CJK TC; a font without the glyphs draws another picture."""
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    from helpers import plots

    monkeypatch.setenv("AML_LANG", "zh_TW")
    monkeypatch.setattr(plt, "show", lambda: None)
    title = i18n._("Confusion matrix (test set)")
    assert any("\u4e00" <= ch <= "\u9fff" for ch in title), title
    with mpl.rc_context():
        plots.confusion_matrix([1, 2, 3], [1, 2, 2])
        fig = plt.gcf()
        assert fig.axes[0].get_title() == title
        assert fig.axes[0].title.get_fontname() == i18n.CJK_FAMILY
        cjk = _title_band(fig)
        plt.close(fig)
    with mpl.rc_context({"font.sans-serif": ["DejaVu Sans"], "font.family": ["sans-serif"]}):
        monkeypatch.setattr(i18n, "use_language_font", lambda: None)
        monkeypatch.setattr(plots, "use_language_font", lambda: None)
        with pytest.warns(UserWarning, match="missing from font"):
            plots.confusion_matrix([1, 2, 3], [1, 2, 2])
            fig = plt.gcf()
            tofu = _title_band(fig)
        plt.close(fig)
    height, width = min(cjk.shape[0], tofu.shape[0]), min(cjk.shape[1], tofu.shape[1])
    difference = np.abs(cjk[:height, :width] - tofu[:height, :width]).mean()
    assert difference > 0.01, "the title looks the same with a font that lacks the glyphs"


def test_make_passes_only_a_command_line_lang_on():
    """make run LANG=de runs notebooks-de/; the shell's own LANG (a locale) leaves the walkthrough in English."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "de_DE.UTF-8", "HOME": str(ROOT)}
    english = subprocess.run(["make", "-n", "-W", "pyproject.toml", "run"], cwd=ROOT, env=env, capture_output=True,
                             text=True)  # fmt: skip
    german = subprocess.run(["make", "-n", "run", "LANG=de"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert "AML_LANG= " in english.stdout.splitlines()[-1], english.stdout
    assert "AML_LANG=de " in german.stdout.splitlines()[-1], german.stdout


def test_lab_settings_choose_jupyterlabs_language_pack():
    from importlib.metadata import distribution

    for lang in LANGUAGES.values():
        folder = i18n.lab_settings(lang)
        settings = folder / "@jupyterlab" / "translation-extension" / "plugin.jupyterlab-settings"
        assert json.loads(settings.read_text()) == {"locale": lang.jupyterlab}
        # the pack for that locale is installed (make install)
        pack = f"jupyterlab-language-pack-{lang.jupyterlab.lower().replace('_', '-')}"
        assert distribution(pack).version


def test_translated_notebooks_link_to_learn_in_the_readers_language():
    text = (ROOT / "notebooks-zh_TW" / "03-train.ipynb").read_text(encoding="utf-8")
    assert "https://learn.microsoft.com/zh-tw/azure/machine-learning/v1/how-to-train-keras" in text
    english = (ROOT / "notebooks" / "03-train.ipynb").read_text(encoding="utf-8")
    assert "https://learn.microsoft.com/azure/machine-learning/v1/how-to-train-keras" in english
    nb = nbformat.reads(text, as_version=4)
    assert "../scripts" in "".join(c.source for c in nb.cells if c.cell_type == "code")  # same depth, same paths


def test_a_changed_paragraph_comes_back_fuzzy_and_readers_get_the_new_english(tmp_path, monkeypatch):
    """make translations after an English paragraph changed: the catalogue still reads (one line per comment),
    the entry is fuzzy with the old translation as its suggestion, and the built notebook shows the new English."""
    import polib

    source = "notebooks/00-setup.ipynb"
    shutil.copytree(translations.LOCALES, tmp_path / "locales")
    monkeypatch.setattr(translations, "LOCALES", tmp_path / "locales")
    monkeypatch.setattr(translations, "TEMPLATES", tmp_path / "locales" / "templates")
    catalog = translations.template(source)
    old = max((m.id for m in catalog if m.id), key=len)  # the longest paragraph: its #| comment would wrap
    new = old.rstrip(".") + ", as a change to the English would."
    message = catalog[old]
    del catalog[old]
    catalog.add(new, auto_comments=message.auto_comments)
    translations._write(catalog, translations.template_path(source), omit_header=False)

    changed = translations.update(["de"], only={translations.catalogue_name(source)})
    assert changed == [translations.catalogue_path("de", source)]
    po = polib.pofile(str(changed[0]))  # readable: the bug was a wrapped "#| msgid" line polib rejects
    entry = po.find(new)
    assert entry is not None and "fuzzy" in entry.flags and entry.previous_msgid == old
    assert entry.msgstr, "the old translation is kept as the translator's suggestion"
    problems = translations.catalogue_problems(changed[0], translations.template_path(source), "de")
    assert any("fuzzy" in p for p in problems), problems
    shown = translations.translate_markdown(new, translations._translations(changed[0]))
    assert shown == new, "until a translator checks it, a changed paragraph shows the new English, not the old text"


def test_a_broken_catalogue_is_a_one_line_error_naming_it(tmp_path, monkeypatch, capsys):
    """A catalogue a PO editor left invalid: check names the file and exits 2, with no traceback."""
    shutil.copytree(translations.LOCALES, tmp_path / "locales")
    monkeypatch.setattr(translations, "LOCALES", tmp_path / "locales")
    monkeypatch.setattr(translations, "TEMPLATES", tmp_path / "locales" / "templates")
    broken = translations.catalogue_path("de", "notebooks/01-dataset.ipynb")
    broken.write_text(broken.read_text(encoding="utf-8") + '\nmsgid "no msgstr follows"\n', encoding="utf-8")
    assert translations.main(["check", "--lang", "de"]) == 2
    err = capsys.readouterr().err.strip()
    assert "locales/de/notebooks/01-dataset.po: not a valid catalogue" in err and "Traceback" not in err
