"""``siyu init [DIR]``: a brand's own content to start from — knowledge base, SOP script, Moments calendar,
tiers ladder — with 【待填写】 placeholders, valid against the contracts (``kb check``, ``sop check``,
``tiers check`` pass on it). Nothing in it reaches a customer before the operator has filled it in:
the script starts only by hand (``trigger: manual``, ``enabled: false``) and each Moments day waits
for ``/moments approve``.

The layout is the one the config's defaults expect, so a config file in ``DIR`` finds everything.
"""

from __future__ import annotations

from pathlib import Path

KNOWLEDGE = """\
# 【待填写】品牌的常见问题。每条知识：id（英文、数字、连字符）、问法 questions、关键词 keywords、答案 answer。
# 字段说明见 docs/knowledge.md。改完检查：siyu kb check knowledge_base
# 把占位文字（【待填写…】）全部换成自己的内容后再上线。

- id: brand-intro
  questions:
    - 你们是什么品牌
    - 品牌介绍一下
    - 你们是做什么的
  keywords: [品牌介绍]
  answer: |
    【待填写：用两三句话介绍品牌：做什么、为谁做、有什么不一样】

- id: shipping-time
  questions:
    - 多久发货
    - 什么时候发货
    - 下单后几天能到
  keywords: [发货, 到货]
  answer: |
    【待填写：发货时间、快递公司、一般几天送到】

- id: refund-policy
  questions:
    - 可以退货吗
    - 怎么退款
    - 退换货政策是什么
  keywords: [退货, 退款, 退换]
  answer: |
    【待填写：退换货条件、时限、流程，以及运费谁出】
"""

SYNONYMS = """\
# 词表：同义词一行一组，第一个词是标准词（说明见 docs/knowledge.md）。
# 【待填写】例如：退款 退钱 退费
"""

SCRIPT = """\
# 【待填写】一个 SOP 脚本的起点：手动启动（/sop start welcome @成员），填好文字、检查无误后再改 enabled: true。
# 字段说明见 docs/sop.md。改完检查：siyu sop check sop_templates
id: welcome
name: 新客户欢迎
description: 【待填写：这个脚本做什么】
enabled: false
trigger: manual
per: member
quiet_hours: "21:30-09:00"
steps:
  - id: hello
    at: "+0m"
    via: remind_staff
    stage: 引导
    text: |
      【待填写：提醒员工给 {{ member.name }} 做什么，例如发一段欢迎语、邀请进群】
"""

MOMENTS = """\
# 【待填写】朋友圈周计划。approval: true —— 每天的内容要先 /moments approve <日期> 才会发出。
# 字段说明见 docs/sop.md（The Moments calendar）。改完检查：siyu sop check sop_templates
approval: true
staff: []                       # 【待填写：发朋友圈的员工 user id，例如 [zhangsan]】
audience: {tags: [], tiers: []}

week:
  monday:
    - time: "09:00"
      theme: 【待填写：主题】
      text: |
        【待填写：周一要发的朋友圈文字】
"""

TIERS = """\
# 【待填写】会员分层规则：等级（低到高）、积分规则、降级。字段说明见 docs/tiers.md。
# 改完检查：siyu tiers check tiers.yaml

tiers:
  - {id: newcomer, name: 新朋友}
  - {id: regular,  name: 老朋友, requires: {points: 50}}
  - {id: vip,      name: VIP,   requires: {purchases: 1}}

points:
  message:  {points: 1, daily_cap: 5}
  checkin:  {points: 5, daily_cap: 1, keywords: [打卡]}
  purchase: {points: 50}

downgrade: {inactive_days: 60, to: newcomer, keep: [vip]}

privileges:
  regular: [【待填写：老朋友的权益】]
  vip:     [【待填写：VIP 的权益】]
"""

FILES: dict[str, str] = {
    "knowledge_base/faq.yaml": KNOWLEDGE,
    "knowledge_base/synonyms.txt": SYNONYMS,
    "sop_templates/welcome.yaml": SCRIPT,
    "sop_templates/moments.yaml": MOMENTS,
    "tiers.yaml": TIERS,
}


def scaffold(directory: Path) -> tuple[list[Path], list[Path]]:
    """Write the files into ``directory`` (created if needed); (written, kept) — an existing file is never
    overwritten."""
    written, kept = [], []
    for rel, text in FILES.items():
        path = directory / rel
        if path.exists():
            kept.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written, kept
