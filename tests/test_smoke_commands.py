from bot.testing import Harness


async def test_help_lists_commands_visible_to_the_member(harness: Harness) -> None:
    (text,) = await harness.say_texts("/help")
    assert "/whoami" in text
    assert "/role" not in text  # admin only


async def test_admin_sees_role_command_and_grants(harness: Harness) -> None:
    text = "\n".join(await harness.admin("/help"))   # a long list is split into several messages
    assert "/role" in text
    (text,) = await harness.admin("/role grant @zhang operator")
    assert "已授予" in text
    async with harness.app.db.read() as s:
        assert "operator" in await harness.app.roles.of(s, "zhang")
