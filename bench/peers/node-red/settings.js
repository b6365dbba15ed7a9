// Node-RED settings for the citybrain MQTT benchmark: headless, no editor, no credentials, quiet log.
module.exports = {
    uiPort: parseInt(process.env.NODE_RED_PORT || "18800", 10),
    uiHost: "127.0.0.1",
    httpAdminRoot: false,      // no editor
    httpNodeRoot: false,       // no HTTP-in endpoints
    credentialSecret: false,
    flowFilePretty: false,
    disableEditor: true,
    logging: { console: { level: "info", metrics: false, audit: false } },
    functionExternalModules: false,
    externalModules: { autoInstall: false, palette: { allowInstall: false } },
    contextStorage: { default: { module: "memory" } },
    exportGlobalContextKeys: false,
};
