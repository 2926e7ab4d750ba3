//! Embedded name pools and kana helpers (width, hiragana, typos, romaji).

use unicode_normalization::UnicodeNormalization;

/// Family names: `kanji[/variant...]:katakana`, space-separated. The first spelling of a
/// variant group is the common one; the registry holds one of them and a dirty source
/// row may write another.
const FAMILY: &str = "佐藤:サトウ 鈴木:スズキ 高橋/髙橋:タカハシ 田中:タナカ 伊藤:イトウ \
渡辺/渡邊/渡邉:ワタナベ 山本:ヤマモト 中村:ナカムラ 小林:コバヤシ 加藤:カトウ 吉田:ヨシダ 山田:ヤマダ \
佐々木:ササキ 山口:ヤマグチ 松本:マツモト 井上:イノウエ 木村:キムラ 林:ハヤシ 斉藤/齋藤/齊藤:サイトウ \
清水:シミズ 山崎/山﨑:ヤマザキ 森:モリ 池田:イケダ 橋本:ハシモト 阿部:アベ 石川:イシカワ 山下:ヤマシタ \
中島:ナカジマ 石井:イシイ 小川:オガワ 前田:マエダ 岡田:オカダ 長谷川:ハセガワ 藤田:フジタ 後藤:ゴトウ \
近藤:コンドウ 村上:ムラカミ 遠藤:エンドウ 青木:アオキ 坂本:サカモト 斎藤:サイトウ 福田:フクダ 太田:オオタ \
西村:ニシムラ 藤井:フジイ 金子:カネコ 岡本:オカモト 藤原:フジワラ 中野:ナカノ 三浦:ミウラ 原田:ハラダ \
中川:ナカガワ 松田:マツダ 竹内:タケウチ 小野:オノ 田村:タムラ 中山:ナカヤマ 和田:ワダ 石田:イシダ \
森田:モリタ 上田:ウエダ 原:ハラ 内田:ウチダ 柴田:シバタ 酒井:サカイ 宮崎:ミヤザキ 横山:ヨコヤマ \
高木/髙木:タカギ 安藤:アンドウ 宮本:ミヤモト 大野:オオノ 小島:コジマ 谷口:タニグチ 今井:イマイ 工藤:クドウ \
高田/髙田:タカダ 増田:マスダ 丸山:マルヤマ 杉山:スギヤマ 村田:ムラタ 大塚:オオツカ 小山:コヤマ 藤本:フジモト \
平野:ヒラノ 新井:アライ 河野:コウノ 上野:ウエノ 武田:タケダ 野口:ノグチ 松井:マツイ 千葉:チバ \
岩崎:イワサキ 菅原:スガワラ 木下:キノシタ 久保:クボ 佐野:サノ 野村:ノムラ 松尾:マツオ 市川:イチカワ \
菊地:キクチ 杉本:スギモト 古川:フルカワ 大西:オオニシ 島田/嶋田:シマダ 水野:ミズノ 桜井/櫻井:サクライ \
高野:タカノ 渡部:ワタナベ 吉川:ヨシカワ 山内:ヤマウチ 西田:ニシダ 飯田:イイダ 菊池:キクチ 西川:ニシカワ \
小松:コマツ 北村:キタムラ 安田:ヤスダ 五十嵐:イガラシ 川口:カワグチ 平田:ヒラタ 関:セキ 中田:ナカタ \
久保田:クボタ 服部:ハットリ 東:アズマ 岩田:イワタ 土屋:ツチヤ 川崎:カワサキ 福島:フクシマ 本田:ホンダ \
辻:ツジ 樋口:ヒグチ 秋山:アキヤマ 田口:タグチ 永井:ナガイ 山中:ヤマナカ 中西:ナカニシ 吉村:ヨシムラ \
川上:カワカミ 大橋:オオハシ 石原:イシハラ 松岡:マツオカ 浜田/濱田:ハマダ 馬場:ババ 森本:モリモト 矢野:ヤノ \
長嶋/長島:ナガシマ 沢田/澤田:サワダ 広瀬/廣瀬:ヒロセ 富田/冨田:トミタ 品川:シナガワ 大崎:オオサキ \
荻原:オギワラ 庄司:ショウジ 東海林:ショウジ 小柳:コヤナギ 張:チョウ 徐:ジョ 趙:チョウ 蝶野:チョウノ \
京極:キョウゴク 牛島:ウシジマ 宮城:ミヤギ 比嘉:ヒガ 辺見:ヘンミ 国分/國分:コクブン 柳沢/柳澤:ヤナギサワ \
百田:ヒャクタ 中條:チュウジョウ 茶谷:チャタニ 林田:ハヤシダ 神田:カンダ 勝又:カツマタ 白石:シライシ";

const GIVEN_M: &str = "太郎:タロウ 一郎:イチロウ 健太:ケンタ 翔太:ショウタ 大輔:ダイスケ 拓也:タクヤ 翔:ショウ \
蓮:レン 悠真:ユウマ 湊:ミナト 陽翔:ハルト 大翔:ヒロト 悠人:ユウト 蒼:アオイ 樹:イツキ 颯太:ソウタ 陸:リク \
奏太:カナタ 健:ケン 誠:マコト 浩:ヒロシ 茂:シゲル 博:ヒロシ 清:キヨシ 勇:イサム 実:ミノル 進:ススム \
豊:ユタカ 修:オサム 隆:タカシ 正:タダシ 明:アキラ 稔:ミノル 和夫:カズオ 正男:マサオ 秀夫:ヒデオ \
三郎:サブロウ 勝:マサル 弘:ヒロシ 昭:アキラ 武:タケシ 敏夫:トシオ 幸雄:ユキオ 義雄:ヨシオ 正一:ショウイチ \
健一:ケンイチ 修一:シュウイチ 浩二:コウジ 直樹:ナオキ 哲也:テツヤ 達也:タツヤ 和也:カズヤ 剛:ツヨシ \
聡:サトシ 淳:ジュン 亮:リョウ 涼:リョウ 大樹:ダイキ 雄太:ユウタ 亮太:リョウタ 翔平:ショウヘイ 拓海:タクミ \
海斗:カイト 優斗:ユウト 隼人:ハヤト 駿:シュン 瞬:シュン 陽太:ヨウタ 悠斗:ユウト 結翔:ユイト 朝陽:アサヒ \
律:リツ 晴:ハル 新:アラタ 碧:アオイ 岳:ガク 匠:タクミ 恭平:キョウヘイ 俊介:シュンスケ 純一:ジュンイチ \
祐介:ユウスケ 雅人:マサト 康弘:ヤスヒロ 裕:ユタカ 光:ヒカル 智也:トモヤ 圭:ケイ 慎吾:シンゴ 孝:タカシ \
龍:リュウ 竜也:タツヤ 京介:キョウスケ 丈:ジョウ 譲:ユズル 周平:シュウヘイ 章:アキラ 徹:トオル 透:トオル \
英樹:ヒデキ 晃:アキラ 功:イサオ 忠:タダシ 治:オサム 栄一:エイイチ 重雄:シゲオ 久雄:ヒサオ 輝:ヒカル \
悟:サトル 潤:ジュン 啓太:ケイタ 航:ワタル 渉:ワタル 大和:ヤマト 壮太:ソウタ 蒼空:ソラ 颯:ハヤテ \
一輝:カズキ 和樹:カズキ 将太:ショウタ 昌平:ショウヘイ 勇気:ユウキ 雄一:ユウイチ 秀樹:ヒデキ 敦:アツシ \
学:マナブ 誠一:セイイチ 清志:キヨシ 貞夫:サダオ 政雄:マサオ 俊夫:トシオ 常雄:ツネオ 忠雄:タダオ \
恵介:ケイスケ 駿介:シュンスケ 悠:ハルカ 伸也:シンヤ 真一:シンイチ 晋也:シンヤ 雅之:マサユキ 拓真:タクマ \
竜馬:リョウマ 遼:リョウ 凌:リョウ 諒:リョウ 樹生:タツキ 慧:ケイ 虎太郎:コタロウ 琉生:ルイ 湊斗:ミナト";

const GIVEN_F: &str = "花子:ハナコ 陽菜:ヒナ 結衣:ユイ 葵:アオイ 美咲:ミサキ さくら:サクラ 凛:リン 結菜:ユイナ \
芽依:メイ 紬:ツムギ 陽葵:ヒマリ 澪:ミオ 莉子:リコ 心春:コハル 杏:アン 楓:カエデ 美月:ミツキ 彩:アヤ \
愛:アイ 優子:ユウコ 恵子:ケイコ 幸子:サチコ 和子:カズコ 節子:セツコ 洋子:ヨウコ 京子:キョウコ \
久美子:クミコ 由美子:ユミコ 裕子:ユウコ 真由美:マユミ 智子:トモコ 直美:ナオミ 美穂:ミホ 恵:メグミ \
舞:マイ 麻衣:マイ 香織:カオリ 奈々:ナナ 千尋:チヒロ 彩花:アヤカ 美優:ミユ 菜々子:ナナコ 理恵:リエ \
由紀:ユキ 早紀:サキ 明美:アケミ 順子:ジュンコ 純子:ジュンコ 秋子:アキコ 春子:ハルコ 照子:テルコ \
静子:シズコ 文子:フミコ 千代子:チヨコ 初子:ハツコ キヨ:キヨ ハル:ハル 富子:トミコ 光子:ミツコ \
久子:ヒサコ 昌子:マサコ 弘子:ヒロコ 悦子:エツコ 正子:マサコ 美智子:ミチコ 京香:キョウカ 響:ヒビキ \
朱里:アカリ 灯:アカリ 詩織:シオリ 沙織:サオリ 梨花:リカ 亜美:アミ 友美:トモミ 真理:マリ 知佳:チカ \
晶子:ショウコ 祥子:ショウコ 翔子:ショウコ 涼子:リョウコ 良子:リョウコ 恭子:キョウコ 尚子:ナオコ \
瞳:ヒトミ 茜:アカネ 遥:ハルカ 桃子:モモコ 萌:モエ 結子:ユウコ 佳奈:カナ 美帆:ミホ 珠美:タマミ \
千夏:チナツ 夏美:ナツミ 冬美:フユミ 雪菜:ユキナ 琴音:コトネ 音羽:オトハ 紗希:サキ 優奈:ユウナ \
柚葉:ユズハ 一華:イチカ 心愛:ココア 美桜:ミオ 咲良:サクラ 花音:カノン 美緒:ミオ 茉莉:マリ 雫:シズク \
椿:ツバキ 小百合:サユリ 百合子:ユリコ 鈴子:スズコ 貴子:タカコ 紀子:ノリコ 典子:ノリコ 美和:ミワ \
直子:ナオコ 栄子:エイコ 康子:ヤスコ 律子:リツコ 聖子:セイコ 由佳:ユカ 奈緒:ナオ 沙耶:サヤ \
真央:マオ 千晴:チハル 美香:ミカ 綾:アヤ 絵里:エリ 裕美:ヒロミ 陽子:ヨウコ 朋子:トモコ 敏子:トシコ \
房子:フサコ 秀子:ヒデコ 美代子:ミヨコ 喜代子:キヨコ 千鶴:チヅル 智美:トモミ 晴美:ハルミ 純:ジュン \
里奈:リナ 愛子:アイコ 杏奈:アンナ 蘭:ラン 菫:スミレ 小春:コハル 乃愛:ノア 芽衣:メイ 凪:ナギ \
美結:ミユ 朱音:アカネ 実花:ミカ 悠里:ユウリ 樹里:ジュリ 亜希子:アキコ 珠代:タマヨ 初美:ハツミ";

/// One name: kanji spellings (first = common form) and the katakana reading.
#[derive(Debug, Clone)]
pub struct NameEntry {
    pub kanji: Vec<&'static str>,
    pub kana: &'static str,
}

/// The parsed pools.
pub struct Pools {
    pub family: Vec<NameEntry>,
    pub male: Vec<NameEntry>,
    pub female: Vec<NameEntry>,
}

fn parse(src: &'static str) -> Vec<NameEntry> {
    src.split_whitespace()
        .map(|tok| {
            let (k, r) = tok.split_once(':').expect("pool entry kanji:kana");
            NameEntry {
                kanji: k.split('/').collect(),
                kana: r,
            }
        })
        .collect()
}

/// The embedded pools (parsed once).
pub fn pools() -> &'static Pools {
    static POOLS: std::sync::OnceLock<Pools> = std::sync::OnceLock::new();
    POOLS.get_or_init(|| Pools {
        family: parse(FAMILY),
        male: parse(GIVEN_M),
        female: parse(GIVEN_F),
    })
}

/// Small kana (katakana) and their large forms.
const SMALL: &str = "ァィゥェォャュョッ";
const LARGE: &str = "アイウエオヤユヨツ";

/// True if the katakana text holds a small kana.
pub fn has_small(s: &str) -> bool {
    s.chars().any(|c| SMALL.contains(c))
}

/// Replace the first small kana with its large form (ショウ → シヨウ).
pub fn small_to_large(s: &str) -> String {
    let mut done = false;
    s.chars()
        .map(|c| {
            if !done {
                if let Some(i) = SMALL.chars().position(|x| x == c) {
                    done = true;
                    return LARGE.chars().nth(i).unwrap();
                }
            }
            c
        })
        .collect()
}

/// Drop a long-vowel mark, or add one: ウ after an o-row kana becomes ー (ショウ → ショー);
/// otherwise ー is inserted after the first kana. `pos` picks among candidates.
pub fn long_vowel(s: &str) -> String {
    if s.contains('ー') {
        return s.replacen('ー', "", 1);
    }
    let chars: Vec<char> = s.chars().collect();
    const O_ROW: &str = "オコソトノホモヨロヲゴゾドボポョ";
    for i in 1..chars.len() {
        if chars[i] == 'ウ' && O_ROW.contains(chars[i - 1]) {
            let mut out = chars.clone();
            out[i] = 'ー';
            return out.into_iter().collect();
        }
    }
    let mut out = String::new();
    for (i, c) in chars.iter().enumerate() {
        out.push(*c);
        if i == 0 {
            out.push('ー');
        }
    }
    out
}

/// Replace the kana at char index `at` (a kana, not the separator) with `with`.
pub fn substitute(s: &str, at: usize, with: char) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| if i == at { with } else { c })
        .collect()
}

/// A plain katakana used for substitution typos.
pub const TYPO_KANA: &str =
    "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモラリルレロ";

/// Katakana → hiragana (ー and other characters unchanged).
pub fn to_hiragana(s: &str) -> String {
    s.chars()
        .map(|c| {
            if ('\u{30A1}'..='\u{30F6}').contains(&c) {
                char::from_u32(c as u32 - 0x60).unwrap()
            } else {
                c
            }
        })
        .collect()
}

const FULL_KANA: &str = "ヲァィゥェォャュョッーアイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワン";
const HALF_KANA: &str = "ｦｧｨｩｪｫｬｭｮｯｰｱｲｳｴｵｶｷｸｹｺｻｼｽｾｿﾀﾁﾂﾃﾄﾅﾆﾇﾈﾉﾊﾋﾌﾍﾎﾏﾐﾑﾒﾓﾔﾕﾖﾗﾘﾙﾚﾛﾜﾝ";

/// Full-width katakana → half-width katakana (voiced marks split off). Full-width spaces
/// are kept as they are (the caller decides the separator).
pub fn to_halfwidth(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.nfd() {
        match c {
            '\u{3099}' => out.push('ﾞ'),
            '\u{309A}' => out.push('ﾟ'),
            _ => match FULL_KANA.chars().position(|x| x == c) {
                Some(i) => out.push(HALF_KANA.chars().nth(i).unwrap()),
                None => out.push(c),
            },
        }
    }
    out
}

/// Passport-style Hepburn of a katakana reading, upper case (タロウ → TARO).
pub fn romaji(kana: &str) -> String {
    let chars: Vec<char> = kana.nfc().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut sokuon = false;
    while i < chars.len() {
        let c = chars[i];
        if c == 'ッ' {
            sokuon = true;
            i += 1;
            continue;
        }
        if c == 'ー' {
            i += 1;
            continue;
        }
        let mut syl: String = mora(c).to_string();
        if i + 1 < chars.len() {
            if let Some(y) = yoon(c, chars[i + 1]) {
                syl = y;
                i += 1;
            }
        }
        if sokuon && !syl.is_empty() {
            if syl.starts_with("CH") {
                out.push('T');
            } else {
                out.push(syl.chars().next().unwrap());
            }
            sokuon = false;
        }
        if c == 'ン' {
            // Passport Hepburn writes M before B, M, P.
            let next = chars.get(i + 1).map(|n| mora(*n)).unwrap_or("");
            if next.starts_with('B') || next.starts_with('M') || next.starts_with('P') {
                syl = "M".into();
            }
        }
        out.push_str(&syl);
        i += 1;
    }
    out.replace("OU", "O").replace("OO", "O").replace("UU", "U")
}

fn yoon(c: char, next: char) -> Option<String> {
    let v = match next {
        'ャ' => "A",
        'ュ' => "U",
        'ョ' => "O",
        _ => return None,
    };
    let head = match c {
        'キ' => "KY",
        'ギ' => "GY",
        'シ' => "SH",
        'ジ' => "J",
        'チ' => "CH",
        'ニ' => "NY",
        'ヒ' => "HY",
        'ビ' => "BY",
        'ピ' => "PY",
        'ミ' => "MY",
        'リ' => "RY",
        _ => return None,
    };
    Some(format!("{head}{v}"))
}

fn mora(c: char) -> &'static str {
    const T: &[(char, &str)] = &[
        ('ア', "A"),
        ('イ', "I"),
        ('ウ', "U"),
        ('エ', "E"),
        ('オ', "O"),
        ('カ', "KA"),
        ('キ', "KI"),
        ('ク', "KU"),
        ('ケ', "KE"),
        ('コ', "KO"),
        ('ガ', "GA"),
        ('ギ', "GI"),
        ('グ', "GU"),
        ('ゲ', "GE"),
        ('ゴ', "GO"),
        ('サ', "SA"),
        ('シ', "SHI"),
        ('ス', "SU"),
        ('セ', "SE"),
        ('ソ', "SO"),
        ('ザ', "ZA"),
        ('ジ', "JI"),
        ('ズ', "ZU"),
        ('ゼ', "ZE"),
        ('ゾ', "ZO"),
        ('タ', "TA"),
        ('チ', "CHI"),
        ('ツ', "TSU"),
        ('テ', "TE"),
        ('ト', "TO"),
        ('ダ', "DA"),
        ('ヂ', "JI"),
        ('ヅ', "ZU"),
        ('デ', "DE"),
        ('ド', "DO"),
        ('ナ', "NA"),
        ('ニ', "NI"),
        ('ヌ', "NU"),
        ('ネ', "NE"),
        ('ノ', "NO"),
        ('ハ', "HA"),
        ('ヒ', "HI"),
        ('フ', "FU"),
        ('ヘ', "HE"),
        ('ホ', "HO"),
        ('バ', "BA"),
        ('ビ', "BI"),
        ('ブ', "BU"),
        ('ベ', "BE"),
        ('ボ', "BO"),
        ('パ', "PA"),
        ('ピ', "PI"),
        ('プ', "PU"),
        ('ペ', "PE"),
        ('ポ', "PO"),
        ('マ', "MA"),
        ('ミ', "MI"),
        ('ム', "MU"),
        ('メ', "ME"),
        ('モ', "MO"),
        ('ヤ', "YA"),
        ('ユ', "YU"),
        ('ヨ', "YO"),
        ('ラ', "RA"),
        ('リ', "RI"),
        ('ル', "RU"),
        ('レ', "RE"),
        ('ロ', "RO"),
        ('ワ', "WA"),
        ('ヲ', "O"),
        ('ン', "N"),
        ('ヴ', "BU"),
        ('ァ', "A"),
        ('ィ', "I"),
        ('ゥ', "U"),
        ('ェ', "E"),
        ('ォ', "O"),
        ('ャ', "YA"),
        ('ュ', "YU"),
        ('ョ', "YO"),
    ];
    T.iter()
        .find(|(k, _)| *k == c)
        .map(|(_, v)| *v)
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_kana_helpers() {
        assert_eq!(romaji("シナガワ"), "SHINAGAWA");
        assert_eq!(romaji("タロウ"), "TARO");
        assert_eq!(romaji("ショウタ"), "SHOTA");
        assert_eq!(romaji("ハットリ"), "HATTORI");
        assert_eq!(romaji("ジュンイチ"), "JUNICHI");
        assert_eq!(small_to_large("ショウ"), "シヨウ");
        assert_eq!(long_vowel("ショウ"), "ショー");
        assert_eq!(long_vowel("ショー"), "ショ");
        assert_eq!(to_hiragana("ヤマダ　ハナコ"), "やまだ　はなこ");
        assert_eq!(to_halfwidth("ガッコウ"), "ｶﾞｯｺｳ");
        assert_eq!(to_halfwidth("パン").nfkc().collect::<String>(), "パン");
        let p = pools();
        assert!(p.family.len() >= 150, "{}", p.family.len());
        assert!(p.male.len() >= 140 && p.female.len() >= 140);
    }
}
