// Labels in 简体中文 and English; numbers and dates are formatted with Intl for the chosen locale.
window.I18N = {
  zh: { title: "城市大脑", map: "风险地图", kpis: "关键指标", obsPerMin: "观测/分钟", openAlerts: "未结预警",
    openCases: "在办案件", onTime: "按时办结率", response: "平均响应时间", alerts: "实时预警", caseBoard: "案件看板",
    newCase: "新建案件", description: "问题描述", submit: "提交", trend: "趋势", sensor: "传感器", quantity: "指标",
    directive: "指令下达", target: "对象", message: "内容", send: "下达", ledger: "账本检查点",
    none: "无风险", blue: "蓝色", yellow: "黄色", orange: "橙色", red: "红色", normal: "常态", watch: "预警",
    emergency: "应急", recovery: "恢复", mode: "运行状态", minutes: "分钟", caseFiled: "案件已建立",
    timeline: "办理过程", tasks: "部门任务", deadline: "时限", state: "状态", back: "返回", community: "社区", category: "类别" },
  en: { title: "City Brain", map: "Risk map", kpis: "Key indicators", obsPerMin: "Observations/min",
    openAlerts: "Open alerts", openCases: "Open cases", onTime: "On-time rate", response: "Mean response time",
    alerts: "Live alerts", caseBoard: "Case board", newCase: "New case", description: "Describe the problem",
    submit: "Submit", trend: "Trend", sensor: "Sensor", quantity: "Quantity", directive: "Directive",
    target: "To", message: "Message", send: "Send", ledger: "Ledger checkpoint", none: "No risk", blue: "Blue",
    yellow: "Yellow", orange: "Orange", red: "Red", normal: "Normal", watch: "Watch", emergency: "Emergency",
    recovery: "Recovery", mode: "Operating mode", minutes: "min", caseFiled: "Case filed", timeline: "Timeline",
    tasks: "Department tasks", deadline: "Time limit", state: "State", back: "Back", community: "Community",
    category: "Category" },
};
window.lang = localStorage.getItem("citybrain.lang") || "zh";
window.t = (key) => (window.I18N[window.lang] || window.I18N.zh)[key] || key;
window.locale = () => (window.lang === "zh" ? "zh-CN" : "en-GB");
window.fmtNum = (n, digits = 0) => (n === null || n === undefined || Number.isNaN(n)) ? "–"
  : new Intl.NumberFormat(window.locale(), { maximumFractionDigits: digits }).format(n);
window.fmtTime = (iso) => iso ? new Intl.DateTimeFormat(window.locale(), { dateStyle: "short", timeStyle: "medium" }).format(new Date(iso)) : "–";
window.applyLabels = () => {
  document.documentElement.lang = window.lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = window.t(el.dataset.i18n); });
  document.querySelectorAll("[data-i18n-placeholder]").forEach((el) => { el.placeholder = window.t(el.dataset.i18nPlaceholder); });
  const btn = document.getElementById("lang");
  if (btn) btn.textContent = window.lang === "zh" ? "English" : "中文";
};
