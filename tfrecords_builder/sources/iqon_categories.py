"""The 17 item classes of IQON3000 in the paper, and the table from IQON category texts.

An item's class comes from its *declared* category text only: the original code also let
brand and keyword hits in the item name override it (`nike` -> shoes turned a Nike T-shirt
into shoes); we do not. The text is looked up in `TABLE`: an exact match first, then the
longest key contained in the text (ties: the key listed first). Matching ignores case and
surrounding spaces. A text that matches nothing is "others" and is counted as unknown by
the source, so the table can be extended from the report.

Deliberate choices where the original differed or said nothing:
  - roomwear and pajamas are underwear/swim (the original put roomwear in outerwear);
  - インナー (inner tops such as camisoles) is tops, as in the original;
  - kimono and yukata are outerwear, interior goods and stationery are fashion goods, as in
    the original;
  - その他 ("other") is a known text that maps to others, not an unknown one.
"""

from __future__ import annotations

from typing import Any

# Class names in id order (ids 1..17); no "/" so that they are safe in file and metric names.
CLASS_NAMES = (
    "outerwear", "tops", "dresses", "pants", "skirts", "shoes", "bags", "hats", "watches",
    "accessories", "fashion_goods", "wallets_small_goods", "legwear", "underwear_swim",
    "beauty", "glasses", "others")

_KEYS_OF_CLASS = {
    "outerwear": (
        "アウター", "ジャケット", "コート", "ブルゾン", "ダウン", "ジャンパー", "ポンチョ", "ケープ",
        "着物", "浴衣", "outerwear", "outer", "jacket", "coat", "blouson", "parka"),
    "tops": (
        "トップス", "Tシャツ", "カットソー", "シャツ", "ブラウス", "ニット", "セーター", "カーディガン",
        "パーカー", "スウェット", "タンクトップ", "キャミソール", "チュニック", "ベスト", "ポロシャツ",
        "インナー", "tops", "t-shirt", "shirt", "blouse", "knit", "sweater", "cardigan",
        "hoodie", "sweatshirt", "inner"),
    "dresses": (
        "ワンピース", "ドレス", "オールインワン", "サロペット", "dress", "one-piece", "onepiece"),
    "pants": (
        "パンツ", "ボトムス", "デニム", "ジーンズ", "スラックス", "レギンスパンツ", "pants",
        "trousers", "jeans", "denim", "shorts", "bottoms"),
    "skirts": ("スカート", "skirt"),
    "shoes": (
        "シューズ", "靴", "スニーカー", "ブーツ", "サンダル", "パンプス", "ローファー", "ミュール",
        "shoes", "sneakers", "boots", "sandals", "pumps", "loafers"),
    "bags": ("バッグ", "リュック", "かばん", "鞄", "bag", "backpack"),
    "hats": ("帽子", "ハット", "キャップ", "ニット帽", "ベレー帽", "hat", "cap", "beret", "knit cap"),
    "watches": ("時計", "腕時計", "watch"),
    "accessories": (
        "アクセサリー", "ネックレス", "ピアス", "イヤリング", "リング", "指輪", "ブレスレット",
        "バングル", "ブローチ", "アンクレット", "ヘアアクセサリー", "accessory", "accessories",
        "necklace", "earrings", "pierce", "ring", "bracelet", "bangle", "brooch"),
    "fashion_goods": (
        "ファッション雑貨", "ファッション小物", "ベルト", "ストール", "スカーフ", "マフラー", "手袋",
        "傘", "ハンカチ", "ネクタイ", "インテリア", "文房具", "ステーショナリー", "belt", "stole",
        "scarf", "muffler", "gloves", "umbrella", "interior", "stationery"),
    "wallets_small_goods": (
        "財布", "小物", "ポーチ", "キーケース", "キーホルダー", "カードケース", "名刺入れ", "パスケース",
        "スマホケース", "wallet", "small goods", "pouch", "key case", "card case"),
    "legwear": (
        "レッグウェア", "ソックス", "靴下", "タイツ", "ストッキング", "レギンス", "legwear", "socks",
        "tights", "stockings", "leggings"),
    "underwear_swim": (
        "下着", "ルームウェア", "パジャマ", "水着", "ビキニ", "ランジェリー", "underwear", "roomwear",
        "pajamas", "swimwear", "bikini", "lingerie"),
    "beauty": (
        "ビューティー", "コスメ", "香水", "フレグランス", "ネイル", "メイク", "スキンケア", "beauty",
        "cosmetics", "perfume", "fragrance", "nail", "makeup"),
    "glasses": ("メガネ", "眼鏡", "サングラス", "glasses", "sunglasses", "eyewear"),
    "others": ("その他", "other", "others"),
}



def _build_table() -> dict[str, str]:
  table = {}
  for name, keys in _KEYS_OF_CLASS.items():
    for key in keys:
      if key.lower() in table:
        raise ValueError(f"iqon_categories: key {key!r} is listed twice")
      table[key.lower()] = name
  return table


TABLE: dict[str, str] = _build_table()
# Contained-key search order: longest first, then the order listed above (sort is stable).
_KEYS_BY_LENGTH = sorted(TABLE, key=len, reverse=True)


def category_text(item: dict[str, Any]) -> str:
  """Declared category text of an IQON item ("" when absent).

  The first non-empty string among the fields "category x color", "categoryName" and
  "category"."name", cut before its "×" ("ジャケット × ブラック" -> "ジャケット").
  """
  category = item.get("category")
  candidates = (item.get("category x color"), item.get("categoryName"),
                category.get("name") if isinstance(category, dict) else None)
  text = next((v for v in candidates if isinstance(v, str) and v.strip()), "")
  return text.split("×")[0].strip()


def classify(text: str) -> str | None:
  """Class name of a category text (exact key, else longest contained key), else None."""
  text = text.strip().lower()
  if not text:
    return None
  if text in TABLE:
    return TABLE[text]
  return next((TABLE[key] for key in _KEYS_BY_LENGTH if key in text), None)
