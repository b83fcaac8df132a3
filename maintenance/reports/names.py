"""The report's words in Simplified Chinese and English: task kinds, states, figures, headings."""

from __future__ import annotations

from pumpwatch.site import Text

KINDS = {
    "alarm": Text(zh="报警工单", en="Alarm"),
    "fault": Text(zh="故障报修", en="Fault report"),
    "plan": Text(zh="计划保养", en="Planned maintenance"),
    "inspection": Text(zh="巡检", en="Inspection round"),
    "corrective": Text(zh="整改", en="Corrective"),
    "change": Text(zh="变更", en="Change"),
}
COUNTS = {
    "raised": Text(zh="新增", en="Raised"),
    "responded": Text(zh="已响应", en="Taken on"),
    "completed": Text(zh="完成", en="Completed"),
    "verified": Text(zh="验收", en="Verified"),
    "sent_back": Text(zh="退回", en="Sent back"),
    "cancelled": Text(zh="取消", en="Cancelled"),
    "reopened": Text(zh="重开", en="Reopened"),
    "overdue": Text(zh="逾期", en="Overdue"),
}
END_STATES = {
    "open": Text(zh="未完成", en="Open"),
    "done": Text(zh="待验收", en="Done, awaiting sign-off"),
    "verified": Text(zh="已验收", en="Verified"),
    "cancelled": Text(zh="已取消", en="Cancelled"),
}
CLOCKS = {
    "response": Text(zh="响应", en="Response"),
    "resolution": Text(zh="处理完成", en="Resolution"),
}
SLA_FIELDS = {
    "decided": Text(zh="考核数", en="Decided"),
    "met": Text(zh="达标", en="Met"),
    "missed": Text(zh="超时", en="Missed"),
    "attainment": Text(zh="达标率", en="Attainment"),
    "count": Text(zh="次数", en="Count"),
    "median_min": Text(zh="中位(分钟)", en="Median (min)"),
    "max_min": Text(zh="最长(分钟)", en="Max (min)"),
}
ROTATION = {
    "planned": Text(zh="计划轮换", en="Planned"),
    "confirmed": Text(zh="已确认", en="Confirmed"),
    "on_time": Text(zh="按时完成", en="On time"),
    "verified": Text(zh="已验证", en="Verified"),
    "failed": Text(zh="失败", en="Failed"),
    "pending": Text(zh="进行中", en="Pending"),
    "compliance": Text(zh="合规率", en="Compliance"),
}
STATUS = {
    "closed": Text(zh="定稿", en="Final"),
    "preview": Text(zh="预览", en="Preview"),
}
CLOSED_BY = {
    "due": Text(zh="到期自动定稿", en="closed on its due date"),
    "signed": Text(zh="主任签字定稿", en="closed by the director's signature"),
}
TITLE = Text(zh="月度维保报告", en="Monthly maintenance report")
PREPARED = Text(zh="编制", en="Prepared by")
APPROVED = Text(zh="审核", en="Approved by")
PREPARER_ROLE = Text(zh="工程主管", en="Engineering supervisor")
APPROVER_ROLE = Text(zh="管理处主任", en="Management-office director")


def kind_name(kind: str) -> Text:
    """A task kind's name; an unknown kind keeps its code in both languages."""
    return KINDS.get(kind, Text(zh=kind, en=kind))


def both(text: Text) -> str:
    """Chinese, then English: `新增 Raised`."""
    return f"{text.zh} {text.en}"
