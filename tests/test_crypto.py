"""The callback crypto against the protocol doc's vectors and against wechatpy (an independent implementation)."""

from __future__ import annotations

import pytest
from wechatpy.enterprise.crypto import WeChatCrypto

from bot.crypto import CryptoError, WeComCrypto, check_signature, signature
from bot.testing import CallbackSigner, text_xml

V2 = ("QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wx5823bf96d3bd56c7")
V2_ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJT"
    "s3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hg"
    "f5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJ"
    "WrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2Yoyy"
    "H2uyPIGHBZZIs2pDBS8R07+qN+E7Q=="
)
V3 = ("123456", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "wx49f0ab532d5d035a")
V3_PLAIN = (
    "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n"
    "<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]></ToUserName>\n"
    "<AgentID>1</AgentID>\n<CreateTime>1411525903</CreateTime>\n</xml>"
)


def test_v2_url_verification_vector() -> None:
    c = WeComCrypto(*V2)
    echostr = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
    assert c.verify_and_decrypt("1409659589", "263014780", echostr,
                                "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3") == "1616140317555161061"


def test_v2_post_vector_decrypts_the_text_message() -> None:
    plain = WeComCrypto(*V2).verify_and_decrypt("1409659813", "1372623149", V2_ENCRYPT,
                                                 "477715d11cdb4164915debcba66cb864d751f3e6")
    assert "<FromUserName><![CDATA[mycreate]]></FromUserName>" in plain
    assert "<Content><![CDATA[hello]]></Content>" in plain
    assert "<MsgId>4561255354251345929</MsgId>" in plain
    assert "<AgentID>218</AgentID>" in plain


def test_v3_deterministic_encryption_vector() -> None:
    enc = WeComCrypto(*V3).encrypt(V3_PLAIN, random_prefix=b"1234567890123456")
    assert enc.startswith("9s4gMv99m88kKTh/H8IdkOiMg6bisoy3")
    assert enc.endswith("XiKzHo3")
    assert signature("123456", "1411525903", "461056294", enc) == "407518b7649e86ef23978113f92d27afa9296533"


def test_wechatpy_decrypts_what_we_encrypt_and_we_decrypt_what_it_encrypts() -> None:
    ours = WeComCrypto(*V2)
    theirs = WeChatCrypto(*V2)
    xml = text_xml("你好，怎么退款？", sender="lisi", corp_id=V2[2])
    sealed = theirs.encrypt_message(xml, "5678", "1700000000")
    # wechatpy's envelope: <xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>
    from defusedxml.ElementTree import fromstring

    root = fromstring(sealed)
    enc, sig = root.findtext("Encrypt"), root.findtext("MsgSignature")
    assert ours.verify_and_decrypt("1700000000", "5678", enc, sig) == xml
    q_enc, q_sig = ours.seal(xml, "1700000001", "9999")
    body = f"<xml><ToUserName><![CDATA[{V2[2]}]]></ToUserName><Encrypt><![CDATA[{q_enc}]]></Encrypt></xml>"
    assert theirs.decrypt_message(body, q_sig, "1700000001", "9999") == xml


def test_the_test_signer_matches_wechatpy() -> None:
    signer = CallbackSigner(*V2)
    query, body = signer.app_post(text_xml("hi", corp_id=V2[2]), corp_id=V2[2], timestamp=1700000000, nonce="42")
    from urllib.parse import parse_qs

    q = {k: v[0] for k, v in parse_qs(query).items()}
    assert WeChatCrypto(*V2).decrypt_message(body.decode(), q["msg_signature"], q["timestamp"], q["nonce"]) \
        == text_xml("hi", corp_id=V2[2])


@pytest.mark.parametrize("mutate", ["signature", "receive_id", "padding", "base64"])
def test_tampering_is_detected(mutate: str) -> None:
    c = WeComCrypto(*V2)
    enc = c.encrypt("<xml/>")
    if mutate == "signature":
        with pytest.raises(CryptoError) as e:
            c.verify("1", "2", enc, "0" * 40)
        assert e.value.code == CryptoError.SIGNATURE
    elif mutate == "receive_id":
        with pytest.raises(CryptoError) as e:
            WeComCrypto(V2[0], V2[1], "someone-else").decrypt(enc)
        assert e.value.code == CryptoError.RECEIVE_ID
    elif mutate == "padding":
        import base64

        raw = bytearray(base64.b64decode(enc))
        raw[-1] ^= 0xFF  # corrupts the last block, so the padding check fails
        with pytest.raises(CryptoError):
            c.decrypt(base64.b64encode(bytes(raw)).decode())
    else:
        with pytest.raises(CryptoError) as e:
            c.decrypt("not base64 !!")
        assert e.value.code == CryptoError.BASE64


def test_bad_keys_are_refused() -> None:
    with pytest.raises(CryptoError):
        WeComCrypto("t", "short", "")
    assert check_signature("t", "1", "2", "x", signature("t", "1", "2", "x").upper())
