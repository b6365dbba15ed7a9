// Labels in 简体中文 and English; numbers, dates and units are formatted with Intl for the chosen locale.
window.I18N = {
  zh: { title: "城市大脑", subtitle: "城市运行管理中心", communitySubtitle: "社区微脑", map: "风险地图", kpis: "关键指标",
    obsPerMin: "观测/分钟", openAlerts: "未结预警", openCases: "在办案件", overdueCases: "超期案件", onTime: "按时办结率",
    response: "平均响应时间", score: "运行评价指数", alerts: "实时预警", caseBoard: "案件看板", newCase: "新建案件",
    description: "问题描述", submit: "提交", trend: "趋势", sensor: "传感器", place: "区域", quantity: "指标", by: "按",
    directive: "指令下达", target: "对象", message: "内容", send: "下达", ledger: "账本检查点",
    none: "无风险", blue: "蓝色", yellow: "黄色", orange: "橙色", red: "红色", normal: "常态", watch: "关注",
    emergency: "应急", recovery: "恢复", mode: "运行状态", minutes: "分钟", hours: "小时", caseFiled: "案件已建立",
    timeline: "办理过程", tasks: "部门任务", deadline: "时限", state: "状态", back: "返回", community: "社区",
    category: "类别", live: "实时连接", reconnecting: "重连中", layers: "图层", lyrCells: "网格风险", lyrBounds: "区界",
    lyrSensors: "传感器", lyrCases: "在办案件", lyrResources: "应急资源", treeSize: "树大小", root: "根哈希",
    signedAt: "签名时间", verified: "已验证", notVerified: "未通过验证", rawNote: "查看签名原文", origin: "日志",
    noData: "暂无数据", noAlerts: "当前无未结预警", noCases: "无", overdue: "超期", members: "个来源",
    caseStates: "状态", more: "另有 {n} 件", left: "剩余", latest: "最新值", mean: "平均", max: "最大",
    sent: "已下达", failed: "失败", reports: "社区上报", waitingReceipts: "待回执指令", read: "已读", done: "已办结",
    noReports: "暂无上报", noDirectives: "暂无待回执指令", sensors: "个传感器", cells: "个网格", areaModes: "区域状态",
    levelWarning: "预警", dataTime: "数据时间", resources: "资源", available: "可用", units: "单位", openCase: "打开案件",
    riskOf: "风险", atRisk: "个有风险", explanation: "研判", quitFull: "", showOnMap: "在地图上定位", lastHour: "近", points: "个点",
    intake: "受理", filed: "立案", dispatched: "派遣", handling: "处置", feedback: "反馈", verified_state: "核查",
    closed: "结案", evaluated: "评价", suspended: "挂账", cancelled: "撤销", merged: "合并", pending: "待接收",
    accepted: "已接收", withdrawn: "已撤回", lead: "主办", assist: "协办", hoursLeft: "剩余工作时", created: "创建",
    location: "位置", channel: "渠道", severity: "严重程度", departments: "承办部门", noTasks: "尚未派遣",
    caseClock: "案件时限", step: "环节", actor: "操作人", vehicle: "车辆", team: "队伍", shelter: "避难场所",
    supply: "物资", elsewhere: "其他", aq: "空气质量", weather: "气象", traffic: "交通" },
  en: { title: "City Brain", subtitle: "City operations centre", communitySubtitle: "Community mini-brain", map: "Risk map",
    kpis: "Key indicators", obsPerMin: "Observations/min", openAlerts: "Open alerts", openCases: "Open cases",
    overdueCases: "Overdue cases", onTime: "On-time rate", response: "Mean response time", score: "Operations score",
    alerts: "Live alerts", caseBoard: "Case board", newCase: "New case", description: "Describe the problem",
    submit: "Submit", trend: "Trend", sensor: "Sensor", place: "Place", quantity: "Quantity", by: "By",
    directive: "Directive", target: "To", message: "Message", send: "Send", ledger: "Ledger checkpoint",
    none: "No risk", blue: "Blue", yellow: "Yellow", orange: "Orange", red: "Red", normal: "Normal", watch: "Watch",
    emergency: "Emergency", recovery: "Recovery", mode: "Operating mode", minutes: "min", hours: "h",
    caseFiled: "Case filed", timeline: "Timeline", tasks: "Department tasks", deadline: "Time limit", state: "State",
    back: "Back", community: "Community", category: "Category", live: "Live", reconnecting: "Reconnecting",
    layers: "Layers", lyrCells: "Grid risk", lyrBounds: "Boundaries", lyrSensors: "Sensors", lyrCases: "Open cases",
    lyrResources: "Resources", treeSize: "Tree size", root: "Root hash", signedAt: "Signed", verified: "Verified",
    notVerified: "Not verified", rawNote: "Show signed note", origin: "Log", noData: "No data yet",
    noAlerts: "No open alerts", noCases: "None", overdue: "Overdue", members: "sources", caseStates: "States",
    more: "{n} more", left: "left", latest: "Latest", mean: "Mean", max: "Max", sent: "Sent", failed: "Failed",
    reports: "Community reports", waitingReceipts: "Directives awaiting receipts", read: "Read", done: "Done",
    noReports: "No reports yet", noDirectives: "No directives waiting", sensors: "sensors", cells: "cells",
    areaModes: "Area modes", levelWarning: "alert", dataTime: "Data time", resources: "Resources", available: "available",
    units: "units", openCase: "Open case", riskOf: "Risk", atRisk: "at risk", explanation: "Assessment", showOnMap: "Show on map",
    lastHour: "last", points: "points", intake: "Intake", filed: "Filed", dispatched: "Dispatched", handling: "Handling",
    feedback: "Feedback", verified_state: "Verified", closed: "Closed", evaluated: "Evaluated", suspended: "Suspended",
    cancelled: "Cancelled", merged: "Merged", pending: "Pending", accepted: "Accepted", withdrawn: "Withdrawn",
    lead: "Lead", assist: "Assist", hoursLeft: "Working hours left", created: "Created", location: "Location",
    channel: "Channel", severity: "Severity", departments: "Departments", noTasks: "Not dispatched yet",
    caseClock: "Case time limit", step: "Step", actor: "Actor", vehicle: "Vehicle", team: "Team", shelter: "Shelter",
    supply: "Supplies", elsewhere: "Other", aq: "Air quality", weather: "Weather", traffic: "Traffic" },
};
// UN/CEFACT unit codes of the observations -> display units
window.UNITS = { GQ: "µg/m³", CEL: "°C", MMT: "mm", A97: "hPa", MTS: "m/s", DD: "°", P1: "%", E50: "veh/h", IE: "",
  KMH: "km/h", MTR: "m", "59": "ppm", GP: "mg/m³" };
window.lang = localStorage.getItem("citybrain.lang") || "zh";
window.t = (key, vars) => {
  let s = (window.I18N[window.lang] || window.I18N.zh)[key];
  if (s === undefined) s = key;
  if (vars) for (const [k, v] of Object.entries(vars)) s = s.replace("{" + k + "}", v);
  return s;
};
window.stateName = (s) => window.t(s === "verified" ? "verified_state" : s);
window.locale = () => (window.lang === "zh" ? "zh-CN" : "en-GB");
window.fmtNum = (n, digits = 0) => (n === null || n === undefined || Number.isNaN(n)) ? "–"
  : new Intl.NumberFormat(window.locale(), { maximumFractionDigits: digits }).format(n);
window.fmtPct = (x, digits = 1) => (x === null || x === undefined || Number.isNaN(x)) ? "–"
  : new Intl.NumberFormat(window.locale(), { style: "percent", maximumFractionDigits: digits }).format(x);
window.fmtUnit = (code) => (code && window.UNITS[code] !== undefined ? window.UNITS[code] : (code || ""));
window.fmtTime = (iso) => iso ? new Intl.DateTimeFormat(window.locale(), { dateStyle: "short", timeStyle: "medium" }).format(new Date(iso)) : "–";
window.fmtShort = (iso) => iso ? new Intl.DateTimeFormat(window.locale(), { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" }).format(new Date(iso)) : "–";
window.fmtClock = (iso) => iso ? new Intl.DateTimeFormat(window.locale(), { hour: "2-digit", minute: "2-digit", second: "2-digit" }).format(new Date(iso)) : "–";
window.fmtDuration = (minutes) => {
  if (minutes === null || minutes === undefined || Number.isNaN(minutes)) return "–";
  if (Math.abs(minutes) >= 90) return window.fmtNum(minutes / 60, 1) + " " + window.t("hours");
  return window.fmtNum(minutes, 1) + " " + window.t("minutes");
};
window.fmtAgo = (iso) => {
  if (!iso) return "–";
  const s = (new Date(iso).getTime() - Date.now()) / 1000;
  const rtf = new Intl.RelativeTimeFormat(window.locale(), { numeric: "auto", style: "short" });
  const a = Math.abs(s);
  if (a < 60) return rtf.format(Math.round(s), "second");
  if (a < 3600) return rtf.format(Math.round(s / 60), "minute");
  if (a < 86400 * 2) return rtf.format(Math.round(s / 3600), "hour");
  return rtf.format(Math.round(s / 86400), "day");
};
window.esc = (s) => String(s === undefined || s === null ? "" : s).replace(/[&<>"']/g,
  (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
window.applyLabels = () => {
  document.documentElement.lang = window.lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = window.t(el.dataset.i18n); });
  document.querySelectorAll("[data-i18n-placeholder]").forEach((el) => { el.placeholder = window.t(el.dataset.i18nPlaceholder); });
  document.querySelectorAll("[data-i18n-title]").forEach((el) => { el.title = window.t(el.dataset.i18nTitle); });
  const btn = document.getElementById("lang");
  if (btn) btn.textContent = window.lang === "zh" ? "English" : "中文";
};
