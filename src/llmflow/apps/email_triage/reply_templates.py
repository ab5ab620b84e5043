"""The code tier's reply templates, one per language (en, de, fr, es, it, nl, pt, pl, sv, da,
no, tr, ru, zh, ja, ko, ar, he), and the guess of a text's language that picks one: by script first
(Chinese, Japanese, Korean, Arabic, Hebrew, Cyrillic), then by the commonest words of the
Latin-script languages. A template
thanks the sender, names the ids the mail names and promises nothing but an answer."""

from __future__ import annotations

import re

TEMPLATES = {
    "en": ("Hello {name},", "Hello,", "Thank you for your message{about}. We have received it, "
           "and {team} will come back to you shortly.", "Kind regards,"),
    "de": ("Hallo {name},", "Guten Tag,", "vielen Dank für Ihre Nachricht{about}. Wir haben sie "
           "erhalten und melden uns in Kürze bei Ihnen.", "Mit freundlichen Grüßen"),
    "fr": ("Bonjour {name},", "Bonjour,", "Merci pour votre message{about}. Nous l'avons bien "
           "reçu et nous revenons vers vous très prochainement.", "Cordialement,"),
    "es": ("Hola {name}:", "Hola:", "Gracias por su mensaje{about}. Lo hemos recibido y le "
           "responderemos en breve.", "Saludos cordiales,"),
    "it": ("Buongiorno {name},", "Buongiorno,", "grazie per il suo messaggio{about}. L'abbiamo "
           "ricevuto e le risponderemo al più presto.", "Cordiali saluti,"),
    "nl": ("Beste {name},", "Beste klant,", "Hartelijk dank voor uw bericht{about}. We hebben het "
           "ontvangen en nemen zo snel mogelijk contact met u op.", "Met vriendelijke groet,"),
    "pt": ("Olá {name},", "Olá,", "Obrigado pela sua mensagem{about}. Recebemos a sua mensagem e "
           "responderemos em breve.", "Atenciosamente,"),
    "pl": ("Dzień dobry,", "Dzień dobry,", "dziękujemy za wiadomość{about}. Otrzymaliśmy ją i "
           "wkrótce odpowiemy.", "Z poważaniem,"),
    "sv": ("Hej {name},", "Hej,", "Tack för ditt meddelande{about}. Vi har tagit emot det och "
           "återkommer till dig så snart som möjligt.", "Med vänliga hälsningar,"),
    "da": ("Hej {name},", "Hej,", "Tak for din besked{about}. Vi har modtaget den og vender "
           "tilbage til dig hurtigst muligt.", "Med venlig hilsen,"),
    "no": ("Hei {name},", "Hei,", "Takk for meldingen din{about}. Vi har mottatt den og kommer "
           "tilbake til deg så snart som mulig.", "Med vennlig hilsen,"),
    "tr": ("Merhaba {name},", "Merhaba,", "Mesajınız{about} için teşekkür ederiz. Mesajınızı "
           "aldık ve en kısa sürede size dönüş yapacağız.", "Saygılarımızla,"),
    "ru": ("Здравствуйте, {name}!", "Здравствуйте!", "Спасибо за ваше сообщение{about}. Мы его "
           "получили и скоро с вами свяжемся.", "С уважением,"),
    "zh": ("{name}，您好：", "您好：", "感谢您的来信{about}。我们已经收到，会尽快回复您。",
           "此致敬礼"),
    "ja": ("{name}様", "お客様", "お問い合わせ{about}ありがとうございます。確かに受け付けました。"
           "改めてご連絡いたします。", "よろしくお願いいたします。"),
    "ko": ("{name}님, 안녕하세요.", "안녕하세요.", "보내주신 메시지{about} 감사합니다. 잘 받았으며 "
           "곧 다시 연락드리겠습니다.", "감사합니다."),
    "ar": ("مرحباً {name}،", "مرحباً،", "شكراً لرسالتك{about}. لقد استلمناها وسنرد عليك قريباً.",
           "مع أطيب التحيات،"),
    "he": ("שלום {name},", "שלום,", "תודה על פנייתך{about}. קיבלנו אותה ונחזור אליך בהקדם.",
           "בברכה,"),
}  # fmt: skip
"""Per language: greeting with the sender's first name, greeting without, the text, the
closing; our signature follows."""
ABOUT = {
    "en": " about {ids}", "de": " zu {ids}", "fr": " concernant {ids}", "es": " sobre {ids}",
    "it": " riguardo a {ids}", "nl": " over {ids}", "pt": " sobre {ids}",
    "pl": " w sprawie {ids}", "sv": " om {ids}", "da": " om {ids}", "no": " om {ids}",
    "tr": " ({ids})", "ru": " по поводу {ids}",
    "ko": "({ids})",
    "zh": "（{ids}）", "ja": "（{ids}）", "ar": " بخصوص {ids}", "he": " בעניין {ids}",
}  # fmt: skip
TEAMS = {
    "billing": "our billing team",
    "support": "our customer service team",
    "sales": "our sales team",
    "internal": "I",
}
"""Who answers, per category (the English template names them)."""

_SCRIPTS = {
    "kana": re.compile(r"[\u3040-\u30ff]"),
    "han": re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"),
    "ko": re.compile(r"[\uac00-\ud7af\u1100-\u11ff]"),
    "ar": re.compile(r"[\u0600-\u06ff\u0750-\u077f]"),
    "he": re.compile(r"[\u0590-\u05ff]"),
    "ru": re.compile(r"[\u0400-\u04ff]"),
}
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
_MARKS = {
    "en": {"the", "and", "you", "is", "to", "please", "we", "our", "your"},
    "de": {"und", "der", "die", "das", "ich", "sie", "bitte", "wir", "nicht", "ist"},
    "fr": {"le", "la", "les", "et", "je", "vous", "nous", "est", "pour", "merci"},
    "es": {"el", "los", "las", "y", "que", "por", "para", "usted", "gracias", "mi"},
    "it": {"il", "di", "che", "per", "sono", "grazie", "vi", "della", "questo", "gli", "ho",
           "buongiorno", "buonasera", "potete", "potreste", "vorrei", "vorremmo", "saluti",
           "anche", "alla", "nella", "nel"},
    "nl": {"het", "een", "ik", "niet", "wij", "jullie", "graag", "bedankt", "mijn", "voor",
           "met", "uw", "dank", "zijn"},
    "pt": {"não", "obrigado", "obrigada", "você", "vocês", "com", "meu", "minha", "pelo", "pela",
           "sua", "seu", "em"},
    "pl": {"się", "nie", "jest", "że", "proszę", "czy", "dzień", "dobry", "dziękuję", "jestem",
           "został", "została", "moje", "mój", "moja", "oraz", "poważaniem", "dziękujemy"},
    "sv": {"jag", "och", "att", "är", "inte", "för", "på", "hej", "tack", "ni", "mig", "min",
           "hälsningar", "vänliga"},
    # Danish and Norwegian share "hej", "mig" and "min" with Swedish: their own commonest
    # words keep them from being answered in Swedish.
    "da": {"jeg", "ikke", "og", "af", "hvad", "hvornår", "endnu", "tak", "venlig", "hilsen",
           "kære", "jeres", "hvis"},
    "no": {"jeg", "ikke", "og", "av", "hva", "når", "ennå", "takk", "vennlig", "hilsen",
           "hei", "dere", "deres"},
    "tr": {"ve", "bir", "bu", "için", "ile", "merhaba", "lütfen", "teşekkürler", "teşekkür",
           "misiniz", "mısınız", "musunuz", "değil", "çok", "kadar", "ederim", "ederiz"},
}  # fmt: skip


def language(text: str) -> str:
    """A rough guess of a text's language: by script when a non-Latin script holds at least a
    quarter as many characters as the Latin letters (zh, ja: Han with kana, ko, ar, he, ru:
    Cyrillic without the letters of Ukrainian, Serbian or Macedonian), else from the commonest
    words: en, de, fr, es, it, nl, pt, pl, sv, da, no, tr (en when none is found)."""
    counts = {name: len(p.findall(text)) for name, p in _SCRIPTS.items()}
    latin = len(_LATIN.findall(text))
    cjk = counts["kana"] + counts["han"]
    scripts = {"cjk": cjk, **{k: counts[k] for k in ("ko", "ar", "he", "ru")}}
    script = max(scripts, key=lambda k: scripts[k])
    if scripts[script] and 4 * scripts[script] >= latin:
        if script == "ru" and re.search(r"[іїєґўјљњћџђѓќѕ]", text, re.I):
            return "cyrillic"  # another language in Cyrillic: no template, none checked
        if script != "cjk":
            return script
        return "ja" if counts["kana"] >= max(2, cjk // 10) else "zh"
    words = re.findall(r"[^\W\d_]+", text.lower())  # whole words: "yılmaz", not "y" + "lmaz"
    scores = {lang: sum(w in m for w in words) for lang, m in _MARKS.items()}
    best = max(scores, key=lambda k: scores[k])
    return best if scores[best] else "en"


def fill(lang: str, name: str | None, ids: list[str], category: str | None, signature: str) -> str:
    """The template of `lang` (English where there is none) filled by code."""
    hello, anonymous, body, bye = TEMPLATES.get(lang, TEMPLATES["en"])
    about = ABOUT.get(lang, ABOUT["en"]).format(ids=", ".join(ids[:3])) if ids else ""
    text = body.format(about=about, team=TEAMS.get(category or "", "our team"))
    return "\n".join([hello.format(name=name) if name else anonymous, "", text, "", bye, signature])
