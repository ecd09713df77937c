import type { AlarmKind } from '../../cloud/alarms/alarm-rules.ts';
import type { ReasonCode } from '../../cloud/dispatch/dispatch-types.ts';
import type { Bilingual, Priority } from '../scenario-result.ts';

/**
 * The report's words in Japanese and English (issue 16, item 3): headings, column names, chart titles
 * and the names of the codes a run reports (the dispatch engine's wait and refusal reasons, alarm kinds,
 * priorities). A code without a name here is shown as the code itself, so a new reason still reads.
 */
export type Lang = 'ja' | 'en';
export const LANGS: readonly Lang[] = ['ja', 'en'];

/**
 * The dispatch engine's reason codes (cloud/dispatch/dispatch-types.ts REASON_CODES: the type makes a new
 * code fail the type check until it has a name here), plus planning mode's own (scenario-figures.ts).
 */
const REASONS: Record<ReasonCode | 'waiting_ground_round', Bilingual> & Record<string, Bilingual> = {
  drone_busy: { ja: 'ドローンが使用中', en: 'Drones busy' },
  drone_state_stale: { ja: 'ドローンの状態が古い', en: 'Drone state stale' },
  over_payload: { ja: '積載量超過', en: 'Over payload' },
  wind_over_limit: { ja: '風速が制限超過', en: 'Wind over limit' },
  gust_over_limit: { ja: '瞬間風速が制限超過', en: 'Gusts over limit' },
  rain_over_limit: { ja: '雨量が制限超過', en: 'Rain over limit' },
  headwind_too_strong: { ja: '向かい風が強すぎる', en: 'Headwind too strong' },
  out_of_range: { ja: '航続距離外', en: 'Out of range' },
  insufficient_battery: { ja: 'バッテリー不足', en: 'Battery too low' },
  no_compartment: { ja: '空きロッカーなし', en: 'No free compartment' },
  no_drone_at_origin: { ja: '出発拠点にドローンなし', en: 'No drone at origin' },
  no_fly_zone: { ja: '飛行禁止区域', en: 'No-fly zone' },
  no_registered_route: { ja: '登録ルートなし', en: 'No registered route' },
  held_emergency: { ja: '緊急モードで保留', en: 'Held (emergency mode)' },
  unknown_hub: { ja: '不明な拠点', en: 'Unknown hub' },
  unregistered_site: { ja: '未登録の着陸地点', en: 'Unregistered landing site' },
  weather_unknown: { ja: '気象データなし', en: 'Weather unknown' },
  waiting_ground_round: { ja: '地上便の出発待ち', en: 'Waiting for a ground round' },
  hub_dark: { ja: '拠点が停電で停止', en: 'Hub dark (no power)' },
  link_cut: { ja: '回線断', en: 'Link cut' },
};

/** cloud/alarms/alarm-rules.ts ALARM_KINDS (the type makes a new kind fail the type check until it has a name here). */
const ALARM_KINDS: Record<AlarmKind, Bilingual> & Record<string, Bilingual> = {
  door_open_too_long: { ja: '扉の開放が長い', en: 'Door open too long' },
  compartment_too_warm: { ja: '保冷温度の超過', en: 'Compartment too warm' },
  drone_battery_low_in_flight: { ja: '飛行中のバッテリー低下', en: 'Battery low in flight' },
  wind_over_limit_mission_planned: { ja: '強風（飛行予定あり）', en: 'Wind over limit, flight planned' },
  hub_offline: { ja: '拠点と通信できない', en: 'Hub offline' },
  repeated_wrong_pickup_codes: { ja: '受取コードの誤入力が続く', en: 'Repeated wrong pickup codes' },
  tamper: { ja: 'こじ開け検知', en: 'Tampering' },
  drone_failsafe: { ja: 'ドローンのフェイルセーフ', en: 'Drone failsafe' },
};

const PRIORITIES: Record<Priority, Bilingual> = {
  medical: { ja: '医療', en: 'Medical' },
  relief: { ja: '救援物資', en: 'Relief' },
  normal: { ja: '通常', en: 'Normal' },
};

const MODES: Record<string, Bilingual> = {
  emergency: { ja: '緊急モード', en: 'Emergency' },
  normal: { ja: '通常モード', en: 'Normal' },
};

const SITE_KINDS: Record<string, Bilingual> = {
  shelter: { ja: '避難所', en: 'Shelter' },
  'isolated-settlement': { ja: '孤立集落', en: 'Isolated settlement' },
};

function codeText(table: Record<string, Bilingual>, code: string, lang: Lang): string {
  return table[code]?.[lang] ?? code.replaceAll('_', ' ');
}

export const reasonLabel = (code: string, lang: Lang): string => codeText(REASONS, code, lang);
export const alarmKindLabel = (kind: string, lang: Lang): string => codeText(ALARM_KINDS, kind, lang);
export const priorityLabel = (p: string, lang: Lang): string => codeText(PRIORITIES as Record<string, Bilingual>, p, lang);
export const modeLabel = (m: string, lang: Lang): string => codeText(MODES, m, lang);
export const siteKindLabel = (k: string, lang: Lang): string => codeText(SITE_KINDS, k, lang);

/** Headings, column names, notes and chart texts. */
export const T = {
  reportTitle: { ja: 'シナリオ評価レポート', en: 'Scenario report' },
  planning: { ja: '計画モード（シミュレーション）', en: 'Planning mode (simulation)' },
  drill: { ja: '訓練モード（実システム）', en: 'Drill mode (live system)' },
  langSwitch: { ja: '表示言語', en: 'Language' },
  region: { ja: '地域', en: 'Region' },
  start: { ja: '開始（日本時間）', en: 'Start (JST)' },
  duration: { ja: '期間', en: 'Duration' },
  seed: { ja: '乱数シード', en: 'Seed' },
  fleet: { ja: '配備ドローン', en: 'Fleet' },
  fleetText: { ja: '{hubs} 拠点に計 {drones} 機', en: '{drones} drones at {hubs} hubs' },
  runFacts: { ja: '実行', en: 'Run' },
  runText: {
    ja: '実時間 {wall}・機器メッセージ {messages} 件・配送計画 {rounds} 回',
    en: 'wall time {wall}, {messages} device messages, {rounds} dispatch rounds',
  },
  timeScale: { ja: '時間倍率 ×{scale}', en: 'time scale ×{scale}' },
  timeNote: {
    ja: '時刻は「開始からの経過（時:分）」と日本時間で示します。',
    en: 'Times are shown as hours:minutes from the scenario start and as clock time in Japan (JST).',
  },
  contents: { ja: '目次', en: 'Contents' },
  none: { ja: 'なし', en: 'None' },
  notReceived: { ja: '未着', en: 'not received' },
  noRequest: { ja: '要請なし', en: 'no request' },

  summary: { ja: '主要な数値', en: 'Key figures' },
  figure: { ja: '項目', en: 'Figure' },
  value: { ja: '値', en: 'Value' },
  sumSitesAsked: { ja: '救援を要請した避難所・集落', en: 'Shelters and settlements that asked for relief' },
  sumSitesReceived: { ja: 'そのうち救援が届いた', en: '… of which received relief' },
  sumTtfrMedian: { ja: '最初の救援までの時間（中央値）', en: 'Time to first relief (median)' },
  sumTtfrMax: { ja: '最初の救援までの時間（最長）', en: 'Time to first relief (worst)' },
  sumDelivered: { ja: '配送完了 / 依頼', en: 'Delivered / requested' },
  sumOnTime: { ja: '期限内配送の割合（全体）', en: 'Delivered on time (all orders)' },
  sumReliefOnTime: { ja: '期限内配送の割合（救援・医療）', en: 'Delivered on time (relief and medical)' },
  sumByGround: { ja: '地上便で配送', en: 'Delivered by ground round' },
  sumRefusals: { ja: '規則により見送った飛行（注文 × 規則）', en: 'Flights refused by a rule (order × rule)' },
  sumAlarms: { ja: '発報したアラーム', en: 'Alarms raised' },
  sumModes: { ja: 'モード切替', en: 'Mode switches' },
  sumMinBattery: { ja: '着陸時バッテリーの最低値', en: 'Lowest battery at landing' },
  sumUtilisation: { ja: 'ドローン稼働率（平均）', en: 'Drone utilisation (mean)' },

  relief: { ja: '避難所・孤立集落への最初の救援', en: 'First relief to shelters and isolated settlements' },
  reliefChart: { ja: '最初の救援までの時間（要請から）', en: 'Time to first relief (from the first request)' },
  reliefNone: { ja: '救援の要請はありませんでした。', en: 'No shelter or settlement asked for relief.' },
  reliefStillWaiting: { ja: '終了時点で未着（待ち時間）', en: 'Not received by the end (time waited)' },
  reliefReceived: { ja: '到着', en: 'Received' },
  site: { ja: '避難所・集落', en: 'Site' },
  kind: { ja: '種別', en: 'Kind' },
  isolatedAt: { ja: '孤立', en: 'Cut off' },
  firstRequest: { ja: '最初の要請', en: 'First request' },
  firstRelief: { ja: '最初の救援', en: 'First relief' },
  ttfr: { ja: '要請から救援まで', en: 'Time to first relief' },
  requests: { ja: '要請', en: 'Requests' },
  delivered: { ja: '配送済', en: 'Delivered' },
  minutes: { ja: '分', en: 'minutes' },
  hoursFromStart: { ja: '開始からの時間（時間）', en: 'Hours from the start' },

  deliveries: { ja: '優先度別の配送と期限内の割合', en: 'Deliveries by priority, and on time' },
  deliveriesChart: { ja: '優先度別の注文の結末', en: 'How orders ended, by priority' },
  deliveriesNone: { ja: '注文はありませんでした。', en: 'There were no orders.' },
  priority: { ja: '優先度', en: 'Priority' },
  requested: { ja: '依頼', en: 'Requested' },
  onTime: { ja: '期限内', en: 'On time' },
  late: { ja: '期限超過', en: 'Late' },
  failed: { ja: '失敗', en: 'Failed' },
  cancelled: { ja: '取消', en: 'Cancelled' },
  open: { ja: '未完了', en: 'Still open' },
  byGround: { ja: '地上便', en: 'By ground' },
  onTimeShare: { ja: '期限内の割合', en: 'On-time share' },
  leadP50: { ja: '所要時間 中央値', en: 'Lead time p50' },
  leadP90: { ja: '所要時間 90%', en: 'Lead time p90' },
  leadMax: { ja: '所要時間 最長', en: 'Lead time max' },
  orders: { ja: '注文数', en: 'Orders' },
  outcome: { ja: '結末', en: 'Outcome' },

  waiting: { ja: '待機中の注文とその理由', en: 'Orders waiting, and why' },
  waitingChart: { ja: '理由別の待機注文数', en: 'Orders waiting, by reason' },
  waitingNone: { ja: '待機した注文はありませんでした。', en: 'No order had to wait.' },
  reason: { ja: '理由', en: 'Reason' },

  drones: { ja: 'ドローンの稼働と着陸時のバッテリー', en: 'Drone utilisation and battery at landing' },
  utilChart: { ja: 'ドローン稼働率（飛行時間の割合）', en: 'Drone utilisation (share of the run in flight)' },
  utilisation: { ja: '稼働率（%）', en: 'Utilisation (%)' },
  batteryChart: { ja: '着陸時のバッテリー残量（1 回の着陸 = 1 本）', en: 'Battery at each landing (one tick per landing)' },
  batteryPct: { ja: 'バッテリー残量（%）', en: 'Battery (%)' },
  dronesNone: { ja: 'ドローンは配備されていませんでした。', en: 'No drones were stationed.' },
  landingsNone: { ja: '着陸はありませんでした。', en: 'No drone landed.' },
  hub: { ja: '拠点', en: 'Hub' },
  drone: { ja: '機体', en: 'Drone' },
  flights: { ja: '飛行回数', en: 'Flights' },
  flightTime: { ja: '飛行時間', en: 'Time in flight' },
  minBattery: { ja: '最低残量', en: 'Lowest at landing' },

  refusals: { ja: '規則により見送った飛行', en: 'Flights refused, by rule' },
  refusalsChart: { ja: '規則別の見送り（1件の注文は規則ごとに1回）', en: 'Refusals by rule (an order counts once per rule)' },
  refusalsNone: { ja: '規則による見送りはありませんでした。', en: 'No flight was refused.' },
  count: { ja: '回数', en: 'Count' },

  alarms: { ja: 'アラームの発報と解除', en: 'Alarms raised and cleared' },
  alarmsChart: { ja: '種類別の発報・解除', en: 'Raised and cleared, by kind' },
  alarmsActiveChart: { ja: '発報中のアラーム数', en: 'Active alarms' },
  alarmsNone: { ja: 'アラームはありませんでした。', en: 'No alarm was raised.' },
  raised: { ja: '発報', en: 'Raised' },
  cleared: { ja: '解除', en: 'Cleared' },
  active: { ja: '発報中', en: 'Active' },

  links: { ja: '拠点の回線状態と未送信データ', en: "Hubs' link state and backlog" },
  linkStateChart: { ja: '回線状態（赤 = 切断）', en: 'Link to the cloud (red = cut)' },
  backlogChart: { ja: '未送信メッセージ数', en: 'Messages waiting at the hub' },
  linksNone: { ja: '回線の記録はありません。', en: 'No link samples were recorded.' },
  linkUp: { ja: '接続', en: 'Up' },
  linkDown: { ja: '切断', en: 'Cut' },
  state: { ja: '状態', en: 'State' },
  backlog: { ja: '未送信', en: 'Backlog' },
  cutHubs: { ja: '切断のあった拠点', en: 'Hubs whose link was cut' },
  maxBacklog: { ja: '最大未送信', en: 'Largest backlog' },

  modes: { ja: 'モード切替と拠点の応答時間', en: 'Mode switches and acknowledgement times' },
  modesChart: { ja: '切替から拠点の応答までの時間', en: 'Switch → hub acknowledgement' },
  ackAxis: { ja: '応答までの時間（対数目盛）', en: 'Time to acknowledge (log scale)' },
  modesNone: { ja: 'モード切替はありませんでした。', en: 'The mode was not switched.' },
  at: { ja: '時刻', en: 'At' },
  mode: { ja: 'モード', en: 'Mode' },
  by: { ja: '操作者', en: 'By' },
  cause: { ja: 'きっかけ', en: 'Cause' },
  hubsAcked: { ja: '応答拠点 / 対象', en: 'Hubs acknowledged' },
  ackP50: { ja: '応答 中央値', en: 'Ack p50' },
  ackMax: { ja: '応答 最長', en: 'Ack max' },
  seconds: { ja: '秒', en: 's' },
  switchLabel: { ja: '切替', en: 'Switch' },

  actions: { ja: 'コーディネーターの操作（訓練）', en: "Coordinators' actions (drill)" },
  actionsNone: { ja: '記録された操作はありません（計画モードでは操作者はいません）。', en: 'No actions recorded (planning mode has no people at the consoles).' },
  action: { ja: '操作', en: 'Action' },
  detail: { ja: '詳細', en: 'Detail' },

  sweep: { ja: '機数の検討（拠点あたりのドローン数）', en: 'Capacity planning (drones per hub)' },
  sweepIntro: {
    ja: '同じシナリオ・同じ乱数シードを、拠点あたりのドローン数を変えて実行した結果です。',
    en: 'The same scenario and seed, run with each number of drones per hub.',
  },
  sweepMainRow: { ja: '太字の行がこのレポートの本体の実行です。', en: 'The row in bold is the run this report details.' },
  sweepMainOwn: {
    ja: 'このレポートの本体は、シナリオと地域ファイルどおりの配備での実行です（表にはありません）。',
    en: "The run this report details used the scenario's own fleet (not a row of the table).",
  },
  sweepNone: {
    ja: '機数の比較は実行されていません（--sweep drones-per-hub=1..4 で実行できます）。',
    en: 'No capacity sweep was run (use --sweep drones-per-hub=1..4).',
  },
  dronesPerHub: { ja: '拠点あたりドローン数', en: 'Drones per hub' },
  ttfrMedian: { ja: '最初の救援まで 中央値', en: 'Time to first relief, median' },
  ttfrMax: { ja: '最初の救援まで 最長', en: 'Time to first relief, worst' },
  sitesWithout: { ja: '未着の地点', en: 'Sites without relief' },
  median: { ja: '中央値', en: 'Median' },
  worst: { ja: '最長', en: 'Worst' },
  reliefAndMedical: { ja: '救援・医療', en: 'Relief and medical' },
  allOrders: { ja: '全注文', en: 'All orders' },
  reliefOnTime: { ja: '救援・医療の期限内割合', en: 'Relief on time' },
  overallOnTime: { ja: '全体の期限内割合', en: 'All orders on time' },
  sweepTimeChart: { ja: '最初の救援までの時間と機数', en: 'Time to first relief vs drones per hub' },
  sweepShareChart: { ja: '期限内配送の割合（%）と機数', en: 'Delivered on time (%) vs drones per hub' },
  share: { ja: '割合（%）', en: 'Share (%)' },
  measure: { ja: '指標', en: 'Measure' },
  neverNote: {
    ja: '「—」は救援が届かなかった地点があるため算出できないことを示します。',
    en: '"—" means some site received no relief, so the figure cannot be given.',
  },
  generated: { ja: 'このファイルは外部の資源を読み込みません。印刷できます。', en: 'This file loads nothing from elsewhere and can be printed.' },
} as const satisfies Record<string, Bilingual>;

export type TextKey = keyof typeof T;

/** A text in a language, with `{name}` placeholders filled. */
export function t(key: TextKey, lang: Lang, vars: Record<string, string | number> = {}): string {
  return T[key][lang].replace(/\{(\w+)\}/g, (m, name: string) => (name in vars ? String(vars[name]) : m));
}
