"""The code tier outside the Latin alphabet: dates in Chinese, Japanese, Korean, Arabic and
Hebrew (absolute and relative to the mail's date), amounts in yen, yuan and shekels, questions
and sign-offs in those scripts, and replies in the mail's language. Examples written for these
tests (the hard inbox is a test set and stays unseen here)."""

from __future__ import annotations

import datetime as dt

import pytest

from llmflow.apps.email_triage import truth
from llmflow.apps.email_triage.reply_templates import TEMPLATES
from llmflow.inputs.email import Email
from llmflow.steps.grounding import find_dates, parse_date, ungrounded
from tests.mails import message, parsed

DATE = "Tue, 24 Nov 2026 09:00:00 +0000"
REF = dt.date(2026, 11, 24)  # a Tuesday


def read(body: str, sender: str = "Sender <sender@mail.example>", subject: str = "Hi") -> Email:
    return parsed(message(body, sender=sender, subject=subject, date=DATE), source="test.eml")


# -- dates -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("请于2027年1月8日前付款", dt.date(2027, 1, 8)),
        ("我们3月2号到", dt.date(2027, 3, 2)),  # no year: the next 2 March after the mail
        ("12月1日までに返品してください", dt.date(2026, 12, 1)),
        ("2026 年 12 月 20 日", dt.date(2026, 12, 20)),
        ("12월 7일까지 보내 주세요", dt.date(2026, 12, 7)),
        ("交货日期 2026/12/22", dt.date(2026, 12, 22)),
        ("الموعد النهائي 9 ديسمبر 2026", dt.date(2026, 12, 9)),
        ("قبل ٢٨ نوفمبر", dt.date(2026, 11, 28)),  # Arabic-Indic digits
        ("حتى 3 كانون الأول", dt.date(2026, 12, 3)),  # the Levantine month name
        ("המשלוח יגיע ב-30 בנובמבר", dt.date(2026, 11, 30)),
        ("עד 5 דצמבר 2026", dt.date(2026, 12, 5)),
    ],
)
def test_absolute_dates_in_other_scripts(text: str, want: dt.date) -> None:
    assert parse_date(text, REF) == want


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("今天能发货吗", dt.date(2026, 11, 24)),
        ("明天之前", dt.date(2026, 11, 25)),
        ("明日までにお願いします", dt.date(2026, 11, 25)),
        ("星期五之前回复", dt.date(2026, 11, 27)),
        ("周一发货", dt.date(2026, 11, 30)),
        ("下周三之前", dt.date(2026, 12, 2)),  # next week's Wednesday, not tomorrow's
        ("金曜日までに", dt.date(2026, 11, 27)),
        ("来週の月曜日に", dt.date(2026, 11, 30)),
        ("أرجو الرد غداً", dt.date(2026, 11, 25)),
        ("قبل يوم الأربعاء", dt.date(2026, 11, 25)),
        ("حتى الخميس", dt.date(2026, 11, 26)),
        ("אפשר עד מחר?", dt.date(2026, 11, 25)),
        ("עד יום שני", dt.date(2026, 11, 30)),
        ("ביום שישי", dt.date(2026, 11, 27)),
    ],
)
def test_relative_dates_in_other_scripts_count_from_the_mails_date(
    text: str, want: dt.date
) -> None:
    assert parse_date(text, REF) == want
    assert parse_date(text) is None  # relative: read only against the mail's date


def test_words_that_only_look_like_weekdays_are_not_dates() -> None:
    assert find_dates("我们一起去看看", REF) == []  # 一起 is "together", not 周一
    assert find_dates("周末愉快", REF) == []  # the weekend
    assert find_dates("שני זוגות נעליים", REF) == []  # "two pairs", no יום before it


def test_grounding_compares_dates_in_other_scripts_by_value() -> None:
    source = "请在12月18日之前回复。"
    assert ungrounded("Deadline: 18 December", source, ref=REF) == []
    assert ungrounded("截止 2026-12-18", source, ref=REF) == []
    assert ungrounded("截止 12月19日", source, ref=REF) == ["12月19日"]
    assert ungrounded("حتى 18 ديسمبر", source, ref=REF) == []
    assert ungrounded("by Friday", "עד יום שישי", ref=REF) == []  # both 27 November


# -- amounts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "want"),
    [
        ("合計 4,350円 のお支払いです。", ["4350.00 JPY"]),
        ("お支払い金額は￥12,800です。", ["12800.00 JPY"]),  # kana: the yen
        ("这次付了￥88.50，另外还有 240元 运费。", ["88.50 CNY", "240.00 CNY"]),  # the yuan
        ("总价人民币 3,600 元", ["3600.00 CNY"]),
        ("RMB 1,200 and CNY 75.20", ["1200.00 CNY", "75.20 CNY"]),
        ("一共 5000日元", ["5000.00 JPY"]),
        ("JPY 9,900", ["9900.00 JPY"]),
        ("שילמתי ₪420 ועוד 35 ש״ח משלוח", ["420.00 ILS", "35.00 ILS"]),
        ("ILS 1,080.00", ["1080.00 ILS"]),
        ("المبلغ ٣٥٠ USD", ["350.00 USD"]),  # Arabic-Indic digits
    ],
)
def test_amounts_in_yen_yuan_and_shekels(body: str, want: list[str]) -> None:
    assert truth.amounts_by_code(read(body)) == want


def test_grounding_compares_amounts_in_other_scripts_by_value() -> None:
    assert ungrounded("￥4,350", "合計 4,350円") == []
    assert ungrounded("4350 JPY", "合計４,３５０円") == []  # full-width digits
    assert ungrounded("¥4,530", "合計 4,350円") == ["4,530"]
    assert ungrounded("₪ 1,150.00", "סך הכול 1150 ש״ח") == []
    assert ungrounded("350 دولار", "المبلغ ٣٥٠ دولار") == []
    assert ungrounded("paid 40 EUR", "We paid 40 USD.") == ["EUR"]  # the wrong currency


# -- requests ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "want"),
    [
        ("لقد طلبت حقيبة ظهر الأسبوع الماضي.\n\nمتى سيتم شحن الطلب NW-20001؟\n\nشكراً", "متى"),
        ("上周买的帐篷少了一根支架。\n\n可以补发一根吗？\n\n谢谢", "补发"),
        ("先週テントを買いました。\n\n交換していただけますか。\n\nよろしくお願いします。", "交換"),
        (
            "先週テントを買いました。\n\n在庫はありますでしょうか。\n\n何卒よろしくお願い申し上げます。",
            "在庫",
        ),
        ("上个月订的睡袋还没到。\n\n能告诉我什么时候发货吗。\n\n此致\n敬礼", "发货"),
    ],
)
def test_questions_in_other_scripts_are_requests_and_sign_offs_are_not(
    body: str, want: str
) -> None:
    email = read(body)
    request = truth.request_by_code(email)
    assert want in request, request
    assert truth.needs_reply_by_code(email, "support")


@pytest.mark.parametrize(
    "sign_off", ["よろしくお願いいたします。", "どうぞよろしくお願いします", "此致敬礼", "祝好！"]
)
def test_a_sign_off_alone_is_no_request(sign_off: str) -> None:
    email = read(f"新しいカタログを受け取りました。\n\n{sign_off}")
    assert truth.request_by_code(email) == ""


def test_a_deadline_in_another_script_is_read_from_the_request() -> None:
    assert truth.deadline_by_code(read("订单 NW-20002 的发票\n\n请在下周三之前发给我。")) == (
        dt.date(2026, 12, 2)
    )
    hebrew = "הזמנתי שק שינה.\n\nאפשר לקבל חשבונית עד יום שני?\n\nתודה"
    assert truth.deadline_by_code(read(hebrew)) == dt.date(2026, 11, 30)
    arabic = "هل يمكنكم إرسال الفاتورة قبل ٣ ديسمبر؟"
    assert truth.deadline_by_code(read(arabic)) == dt.date(2026, 12, 3)


# -- language and replies ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("我的订单 NW-20003 还没有收到，请帮忙查一下。", "zh"),
        ("Summit Shell のサイズを交換したいです。", "ja"),
        ("주문한 텐트가 아직 도착하지 않았습니다.", "ko"),
        ("أريد استبدال الحذاء بمقاس أكبر من فضلك.", "ar"),
        ("אני רוצה להחליף את המעיל למידה אחרת.", "he"),
        ("Could you send the invoice? Best, 王芳", "en"),  # a name in Han, the mail in English
    ],
)
def test_the_language_is_read_from_the_script(text: str, lang: str) -> None:
    assert truth.language(text) == lang


@pytest.mark.parametrize(
    ("body", "sender", "lang", "greeting"),
    [
        (
            "我的订单 NW-20004 还没有到，可以查一下吗？",
            "李明 <li@mail.example>",
            "zh",
            "李明，您好：",
        ),
        ("注文 NW-20004 はいつ届きますか。", "田中 花子 <t@mail.example>", "ja", "田中様"),
        ("متى يصل الطلب NW-20004؟", "سارة حداد <s@mail.example>", "ar", "مرحباً سارة،"),
        ("מתי תגיע ההזמנה NW-20004?", "דנה כהן <d@mail.example>", "he", "שלום דנה,"),
    ],
)
def test_a_mail_in_another_script_gets_a_reply_in_its_language(
    body: str, sender: str, lang: str, greeting: str
) -> None:
    email = read(body, sender=sender)
    reply = truth.reply_by_code(email, "support", ["NW-20004"], "Northwind Outfitters")
    assert truth.language(reply) == lang
    assert reply.startswith(greeting) and reply.endswith("\nNorthwind Outfitters")
    assert "NW-20004" in reply
    assert truth.reply_problems(reply, email) == []


def test_a_reply_in_another_language_than_the_mails_is_refused() -> None:
    email = read("我的订单 NW-20005 还没有到，可以查一下吗？")
    english = (
        "Hello,\n\nThank you for your message about NW-20005. We will come back to you.\n\n"
        "Kind regards,\nNorthwind Outfitters"
    )
    assert "in en, not in the mail's language zh" in truth.reply_problems(english, email)
    ukrainian = read("Замовлений намет ще не надійшов. Коли він прийде?")
    assert truth.language(ukrainian.excerpt) not in TEMPLATES  # no template: the English one
    reply = truth.reply_by_code(ukrainian, "support", [])  # and no language check
    assert reply.startswith("Hello") and truth.reply_problems(reply, ukrainian) == []
