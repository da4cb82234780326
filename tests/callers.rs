//! A corpus of callers as they talk in Québec (French and English): hesitations, the whole story
//! in the first breath, corrections at every step and at the read-back, first names alone,
//! questions, numbers in words, apartments and rural routes. Each caller is a small simulation that
//! answers **the question asked** (it reads `next_step` and Myriam's message), so a flow that asks
//! fewer questions is played fairly. Each has the lead a receptionist would have written down.
//!
//! `cargo test --test callers -- --nocapture` prints the share qualified correctly and the median
//! number of questions per qualified call.

use myriam::domain::{LeadId, LeadStatus, PhoneNumber};
use myriam::qualification::{Lead, Outcome, machine};
use myriam::text::fold;

/// One caller: what they say when asked each question, and what should be written down.
struct Caller {
    id: &'static str,
    /// The caller ID Myriam may offer at the phone question.
    offered: Option<&'static str>,
    /// The answer to the opening question (« votre nom complet? »).
    opening: &'static str,
    /// Said when asked for the name again.
    name: &'static str,
    /// Said when asked for the family name alone.
    surname: &'static str,
    phone: &'static str,
    address: &'static str,
    service: &'static str,
    description: &'static str,
    urgency: &'static str,
    /// Said instead of the answer the first time a step is asked (1–6), once each, in order;
    /// step 7 is the read-back, 8 is « what should I correct? ».
    events: &'static [(u8, &'static str)],
    expect: Expect,
}

struct Expect {
    name: &'static str,
    phone: &'static str,
    address: &'static str,
    service: &'static str,
    /// Folded words the description must contain.
    description: &'static str,
    urgent: bool,
}

/// Fills the answers a tidy caller gives; each caller overrides what differs.
const BASE: Caller = Caller {
    id: "",
    offered: None,
    opening: "",
    name: "",
    surname: "",
    phone: "",
    address: "",
    service: "",
    description: "",
    urgency: "non",
    events: &[],
    expect: Expect {
        name: "",
        phone: "",
        address: "",
        service: "",
        description: "",
        urgent: false,
    },
};

#[allow(clippy::too_many_lines)]
fn corpus() -> Vec<Caller> {
    vec![
        // ---- Tidy callers, French.
        Caller {
            id: "fr-tidy-1",
            offered: Some("+15145550101"),
            opening: "Marie Tremblay",
            name: "Marie Tremblay",
            phone: "oui c'est ça",
            address: "123 rue Principale, Laval",
            service: "de l'élagage",
            description: "un gros érable qui touche la maison",
            urgency: "non pas vraiment",
            expect: Expect {
                name: "Marie Tremblay",
                phone: "+15145550101",
                address: "123 rue Principale, Laval",
                service: "elagage",
                description: "gros erable",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-tidy-2",
            opening: "je m'appelle Jean-François Gagnon",
            name: "Jean-François Gagnon",
            phone: "cinq un quatre, cinq cinq cinq, zéro un zéro deux",
            address: "c'est au 4567 boulevard Saint-Laurent Montréal h2x 1y4",
            service: "abattage",
            description: "un frêne mort dans la cour arrière",
            urgency: "ça peut attendre",
            expect: Expect {
                name: "Jean-François Gagnon",
                phone: "+15145550102",
                address: "4567 boulevard Saint-Laurent Montréal H2X 1Y4",
                service: "abattage",
                description: "frene mort",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-tidy-3",
            offered: Some("+14185550103"),
            opening: "mon nom est Sylvie Bélanger",
            name: "Sylvie Bélanger",
            phone: "oui",
            address: "12 rue des Érables, Québec G1R 2B5",
            service: "enlever une souche",
            description: "une vieille souche devant la maison",
            urgency: "non",
            expect: Expect {
                name: "Sylvie Bélanger",
                phone: "+14185550103",
                address: "12 rue des Érables, Québec G1R 2B5",
                service: "essouchement",
                description: "vieille souche",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-tidy-4",
            offered: Some("+14505550104"),
            opening: "Luc Ouellet",
            name: "Luc Ouellet",
            phone: "oui c'est le bon",
            address: "88 avenue des Pins, Terrebonne",
            service: "tailler ma haie de cèdres",
            description: "une haie de cèdres d'environ cinquante pieds",
            urgency: "pas pressé",
            expect: Expect {
                name: "Luc Ouellet",
                phone: "+14505550104",
                address: "88 avenue des Pins, Terrebonne",
                service: "haie",
                description: "haie de cedres",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-tidy-5",
            opening: "c'est Nathalie D'Amours",
            name: "Nathalie D'Amours",
            phone: "819 555 0105",
            address: "250 rue King Ouest, Sherbrooke",
            service: "une évaluation",
            description: "mon chêne a des feuilles jaunes en plein été",
            urgency: "non",
            expect: Expect {
                name: "Nathalie D'Amours",
                phone: "+18195550105",
                address: "250 rue King Ouest, Sherbrooke",
                service: "evaluation",
                description: "feuilles jaunes",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-tidy-6",
            offered: Some("+15145550106"),
            opening: "Gaétan Lévesque",
            name: "Gaétan Lévesque",
            phone: "oui",
            address: "3300 chemin Sainte-Foy, Québec",
            service: "un arbre tombé sur le toit",
            description: "le vent a cassé un gros pin qui est sur le toit du garage",
            urgency: "oui c'est urgent",
            expect: Expect {
                name: "Gaétan Lévesque",
                phone: "+15145550106",
                address: "3300 chemin Sainte-Foy, Québec",
                service: "urgence_tempete",
                description: "gros pin",
                urgent: true,
            },
            ..BASE
        },
        // ---- Tidy callers, English.
        Caller {
            id: "en-tidy-1",
            opening: "my name is John Smith",
            name: "John Smith",
            phone: "five one four, five five five, zero two zero one",
            address: "55 Maple Street, Westmount",
            service: "I need a stump removed",
            description: "old oak stump in the back yard",
            urgency: "no it can wait",
            expect: Expect {
                name: "John Smith",
                phone: "+15145550201",
                address: "55 Maple Street, Westmount",
                service: "essouchement",
                description: "oak stump",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "en-tidy-2",
            offered: Some("+15145550202"),
            opening: "hi it's Mary O'Brien",
            name: "Mary O'Brien",
            phone: "yes that's right",
            address: "1200 Sherbrooke Street West, Montreal",
            service: "tree removal",
            description: "a dead elm next to the fence",
            urgency: "not really",
            expect: Expect {
                name: "Mary O'Brien",
                phone: "+15145550202",
                address: "1200 Sherbrooke Street West, Montreal",
                service: "abattage",
                description: "dead elm",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "en-tidy-3",
            opening: "Peter Jones",
            name: "Peter Jones",
            phone: "my number is 438 555 0203",
            address: "my address is 77 Elm Avenue, Pointe-Claire",
            service: "pruning",
            description: "three maples need their branches thinned",
            urgency: "no",
            expect: Expect {
                name: "Peter Jones",
                phone: "+14385550203",
                address: "77 Elm Avenue, Pointe-Claire",
                service: "elagage",
                description: "three maples",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "en-tidy-4",
            offered: Some("+18195550204"),
            opening: "this is Sarah Connor",
            name: "Sarah Connor",
            phone: "yes",
            address: "9 Lakeview Road, Gatineau",
            service: "a tree fell on my garage after the storm",
            description: "a big birch is lying on the garage roof",
            urgency: "yes it's an emergency",
            expect: Expect {
                name: "Sarah Connor",
                phone: "+18195550204",
                address: "9 Lakeview Road, Gatineau",
                service: "urgence_tempete",
                description: "big birch",
                urgent: true,
            },
            ..BASE
        },
        Caller {
            id: "en-tidy-5",
            opening: "David Miller",
            name: "David Miller",
            phone: "514 555 0205",
            address: "410 Main Street, Hudson",
            service: "hedge trimming",
            description: "a long cedar hedge along the driveway",
            urgency: "no rush",
            expect: Expect {
                name: "David Miller",
                phone: "+15145550205",
                address: "410 Main Street, Hudson",
                service: "haie",
                description: "cedar hedge",
                urgent: false,
            },
            ..BASE
        },
        // ---- Hesitations.
        Caller {
            id: "fr-hesite-1",
            offered: Some("+15145550301"),
            opening: "euh bonjour euh je m'appelle euh Line Caron",
            name: "Line Caron",
            phone: "euh oui oui c'est ça",
            address: "euh c'est au 45 rue Notre-Dame, Repentigny",
            service: "euh ben de l'émondage",
            description: "euh ben les branches touchent les fils",
            urgency: "euh non",
            expect: Expect {
                name: "Line Caron",
                phone: "+15145550301",
                address: "45 rue Notre-Dame, Repentigny",
                service: "elagage",
                description: "touchent les fils",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-hesite-2",
            opening: "euh attendez",
            name: "Robert Paquette",
            phone: "quatre un huit, cinq cinq cinq, zéro trois zéro deux",
            address: "710 boulevard Charest Est, Québec",
            service: "abattage",
            description: "un peuplier trop proche de la maison",
            urgency: "non",
            expect: Expect {
                name: "Robert Paquette",
                phone: "+14185550302",
                address: "710 boulevard Charest Est, Québec",
                service: "abattage",
                description: "peuplier",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-hesite-3",
            offered: Some("+14505550303"),
            opening: "Chantal Roy",
            name: "Chantal Roy",
            phone: "oui",
            address: "22 rue Saint-Georges, Saint-Jérôme",
            service: "haie",
            description: "une haie de thuyas trop haute",
            urgency: "non",
            events: &[(3, "euh je sais pas trop attendez"), (4, "hum")],
            expect: Expect {
                name: "Chantal Roy",
                phone: "+14505550303",
                address: "22 rue Saint-Georges, Saint-Jérôme",
                service: "haie",
                description: "thuyas",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "en-hesite-1",
            opening: "uh hi um my name is uh Kevin Walsh",
            name: "Kevin Walsh",
            phone: "uh five one four five five five zero three zero four",
            address: "um 18 Oak Crescent, Beaconsfield",
            service: "uh the hedge",
            description: "um the hedge is overgrown",
            urgency: "uh no",
            expect: Expect {
                name: "Kevin Walsh",
                phone: "+15145550304",
                address: "18 Oak Crescent, Beaconsfield",
                service: "haie",
                description: "overgrown",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-hesite-4",
            offered: Some("+18195550305"),
            opening: "hum bonjour",
            name: "Denis Fortin",
            phone: "oui",
            address: "1450 rue Principale, Granby",
            service: "évaluation",
            description: "un érable qui perd ses branches",
            urgency: "non",
            events: &[(6, "euh")],
            expect: Expect {
                name: "Denis Fortin",
                phone: "+18195550305",
                address: "1450 rue Principale, Granby",
                service: "evaluation",
                description: "perd ses branches",
                urgent: false,
            },
            ..BASE
        },
        // ---- The whole story in the first breath.
        Caller {
            id: "fr-story-1",
            offered: Some("+18195550401"),
            opening: "Bonjour c'est Julie Tremblay, j'ai un arbre tombé sur ma maison au 45 rue King Ouest à Sherbrooke",
            name: "Julie Tremblay",
            phone: "oui",
            address: "45 rue King Ouest à Sherbrooke",
            service: "un arbre tombé",
            description: "un arbre tombé sur ma maison",
            urgency: "oui c'est urgent",
            expect: Expect {
                name: "Julie Tremblay",
                phone: "+18195550401",
                address: "45 rue King Ouest à Sherbrooke",
                service: "urgence_tempete",
                description: "arbre tombe",
                urgent: true,
            },
            ..BASE
        },
        Caller {
            id: "fr-story-2",
            offered: Some("+15145550402"),
            opening: "oui bonjour mon nom c'est Pierre Gauthier pis j'aurais un gros érable mort à faire abattre au 230 rue Saint-Paul à Laval c'est pas pressé",
            name: "Pierre Gauthier",
            phone: "oui",
            address: "230 rue Saint-Paul à Laval",
            service: "abattage",
            description: "un gros érable mort",
            urgency: "non",
            expect: Expect {
                name: "Pierre Gauthier",
                phone: "+15145550402",
                address: "230 rue Saint-Paul à Laval",
                service: "abattage",
                description: "erable mort",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-story-3",
            opening: "c'est Isabelle Morin, mon numéro c'est le 418 555 0403, j'ai une souche à faire enlever au 15 rue des Lilas à Lévis",
            name: "Isabelle Morin",
            phone: "418 555 0403",
            address: "15 rue des Lilas à Lévis",
            service: "essouchement",
            description: "une souche à faire enlever",
            urgency: "non",
            expect: Expect {
                name: "Isabelle Morin",
                phone: "+14185550403",
                address: "15 rue des Lilas à Lévis",
                service: "essouchement",
                description: "souche",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-story-4",
            offered: Some("+14505550404"),
            opening: "bonjour je m'appelle François Bouchard c'est urgent il y a une branche sur le fil électrique au 600 rue Saint-Charles à Longueuil",
            name: "François Bouchard",
            phone: "oui",
            address: "600 rue Saint-Charles à Longueuil",
            service: "urgence",
            description: "une branche sur le fil électrique",
            urgency: "oui",
            expect: Expect {
                name: "François Bouchard",
                phone: "+14505550404",
                address: "600 rue Saint-Charles à Longueuil",
                service: "urgence_tempete",
                description: "fil electrique",
                urgent: true,
            },
            ..BASE
        },
        Caller {
            id: "fr-story-5",
            offered: Some("+15145550405"),
            opening: "Bonjour, Catherine Lavoie, j'aurais besoin de faire tailler ma haie de cèdres",
            name: "Catherine Lavoie",
            phone: "oui",
            address: "90 rue Beaubien Est, Montréal",
            service: "haie",
            description: "une haie de cèdres",
            urgency: "non",
            expect: Expect {
                name: "Catherine Lavoie",
                phone: "+15145550405",
                address: "90 rue Beaubien Est, Montréal",
                service: "haie",
                description: "haie de cedres",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "en-story-1",
            offered: Some("+15145550406"),
            opening: "Hi this is Mark Wilson, a big tree fell on my roof during the storm at 34 Cedar Avenue in Dorval, it's an emergency",
            name: "Mark Wilson",
            phone: "yes",
            address: "34 Cedar Avenue in Dorval",
            service: "storm damage",
            description: "a big tree fell on my roof",
            urgency: "yes",
            expect: Expect {
                name: "Mark Wilson",
                phone: "+15145550406",
                address: "34 Cedar Avenue in Dorval",
                service: "urgence_tempete",
                description: "tree fell",
                urgent: true,
            },
            ..BASE
        },
        Caller {
            id: "en-story-2",
            opening: "hello my name is Linda Brown and I need a dead tree cut down at 120 Oak Street in Hudson, my number is 450 555 0407",
            name: "Linda Brown",
            phone: "450 555 0407",
            address: "120 Oak Street in Hudson",
            service: "tree removal",
            description: "a dead tree cut down",
            urgency: "no",
            expect: Expect {
                name: "Linda Brown",
                phone: "+14505550407",
                address: "120 Oak Street in Hudson",
                service: "abattage",
                description: "dead tree",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-story-6",
            offered: Some("+14185550408"),
            opening: "allo oui c'est Michel Pelletier j'appelle pour faire enlever une souche pas urgent",
            name: "Michel Pelletier",
            phone: "oui",
            address: "5 rue du Parc, Rimouski",
            service: "essouchement",
            description: "une souche",
            urgency: "non",
            expect: Expect {
                name: "Michel Pelletier",
                phone: "+14185550408",
                address: "5 rue du Parc, Rimouski",
                service: "essouchement",
                description: "souche",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-story-7",
            offered: Some("+15145550409"),
            opening: "j'ai un arbre qui est tombé sur mon auto au 77 avenue Laurier à Montréal",
            name: "Hélène Girard",
            phone: "oui",
            address: "77 avenue Laurier à Montréal",
            service: "urgence",
            description: "un arbre qui est tombé sur mon auto",
            urgency: "oui",
            expect: Expect {
                name: "Hélène Girard",
                phone: "+15145550409",
                address: "77 avenue Laurier à Montréal",
                service: "urgence_tempete",
                description: "tombe sur mon auto",
                urgent: true,
            },
            ..BASE
        },
        Caller {
            id: "fr-story-8",
            offered: Some("+18195550410"),
            opening: "Bonjour c'est Annie Côté au 310 rue Wellington à Gatineau",
            name: "Annie Côté",
            phone: "oui",
            address: "310 rue Wellington à Gatineau",
            service: "élagage",
            description: "trois érables à élaguer",
            urgency: "non",
            expect: Expect {
                name: "Annie Côté",
                phone: "+18195550410",
                address: "310 rue Wellington à Gatineau",
                service: "elagage",
                description: "trois erables",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "en-story-3",
            offered: Some("+15145550411"),
            opening: "Hi, Tom Baker here, I'd like a quote to prune two maples",
            name: "Tom Baker",
            phone: "yes",
            address: "8 Church Street, Ayer's Cliff",
            service: "pruning",
            description: "two maples",
            urgency: "no",
            expect: Expect {
                name: "Tom Baker",
                phone: "+15145550411",
                address: "8 Church Street, Ayer's Cliff",
                service: "elagage",
                description: "two maples",
                urgent: false,
            },
            ..BASE
        },
        // ---- Corrections at each step.
        Caller {
            id: "fr-corr-nom-au-tel",
            offered: Some("+15145550501"),
            opening: "Jean Tremblay",
            name: "Jean Tremblay",
            phone: "oui",
            address: "123 rue Principale, Laval",
            service: "élagage",
            description: "des branches trop longues",
            urgency: "non",
            events: &[(2, "non attendez, c'est Jean-Guy Tremblay")],
            expect: Expect {
                name: "Jean-Guy Tremblay",
                phone: "+15145550501",
                address: "123 rue Principale, Laval",
                service: "elagage",
                description: "branches",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-corr-tel-a-adresse",
            opening: "Sophie Martel",
            name: "Sophie Martel",
            phone: "514 555 0520",
            address: "18 rue Ontario, Montréal",
            service: "abattage",
            description: "un bouleau mort",
            urgency: "non",
            events: &[(3, "non attendez, mon numéro c'est le 514 555 0502")],
            expect: Expect {
                name: "Sophie Martel",
                phone: "+15145550502",
                address: "18 rue Ontario, Montréal",
                service: "abattage",
                description: "bouleau",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-corr-adresse-au-service",
            offered: Some("+14185550503"),
            opening: "Paul Bergeron",
            name: "Paul Bergeron",
            phone: "oui",
            address: "250 rue Principale, Saint-Raymond",
            service: "abattage",
            description: "un épinette morte près du cabanon",
            urgency: "non",
            events: &[(4, "Non attendez, c'est 520 rue Principale, pas 250")],
            expect: Expect {
                name: "Paul Bergeron",
                phone: "+14185550503",
                address: "520 rue Principale",
                service: "abattage",
                description: "epinette",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-corr-service-a-description",
            offered: Some("+15145550504"),
            opening: "Karine Dufour",
            name: "Karine Dufour",
            phone: "oui",
            address: "66 rue Jarry Est, Montréal",
            service: "élagage",
            description: "une grosse souche de frêne",
            urgency: "non",
            events: &[(5, "non en fait c'est plutôt de l'essouchement")],
            expect: Expect {
                name: "Karine Dufour",
                phone: "+15145550504",
                address: "66 rue Jarry Est, Montréal",
                service: "essouchement",
                description: "souche de frene",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-corr-adresse-a-urgence",
            offered: Some("+14505550505"),
            opening: "Marc Lefebvre",
            name: "Marc Lefebvre",
            phone: "oui",
            address: "14 rue Sainte-Anne, Chambly",
            service: "haie",
            description: "une haie trop haute",
            urgency: "non",
            events: &[(6, "attendez, en fait c'est au 41 rue Sainte-Anne, Chambly")],
            expect: Expect {
                name: "Marc Lefebvre",
                phone: "+14505550505",
                address: "41 rue Sainte-Anne, Chambly",
                service: "haie",
                description: "haie",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-corr-nom-a-urgence",
            offered: Some("+14185550506"),
            opening: "Réjean Giroux",
            name: "Réjean Giroux",
            phone: "oui",
            address: "9 rue du Fleuve, Rivière-du-Loup",
            service: "élagage",
            description: "un orme trop gros",
            urgency: "non",
            events: &[(6, "non pardon, mon nom c'est Réjean Giroux-Lavoie")],
            expect: Expect {
                name: "Réjean Giroux-Lavoie",
                phone: "+14185550506",
                address: "9 rue du Fleuve, Rivière-du-Loup",
                service: "elagage",
                description: "orme",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-corr-tel-a-description",
            offered: Some("+15145550507"),
            opening: "Lucie Poirier",
            name: "Lucie Poirier",
            phone: "oui",
            address: "200 rue Fleury Ouest, Montréal",
            service: "abattage",
            description: "un vieux peuplier",
            urgency: "non",
            events: &[(5, "attendez, rappelez-moi plutôt au 438 555 0507")],
            expect: Expect {
                name: "Lucie Poirier",
                phone: "+14385550507",
                address: "200 rue Fleury Ouest, Montréal",
                service: "abattage",
                description: "peuplier",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "en-corr-address-at-service",
            offered: Some("+15145550508"),
            opening: "Anna Clark",
            name: "Anna Clark",
            phone: "yes",
            address: "15 Birch Road, Baie-D'Urfé",
            service: "tree removal",
            description: "a dead ash tree",
            urgency: "no",
            events: &[(4, "sorry, actually it's 51 Birch Road, Baie-D'Urfé")],
            expect: Expect {
                name: "Anna Clark",
                phone: "+15145550508",
                address: "51 Birch Road, Baie-D'Urfé",
                service: "abattage",
                description: "dead ash",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "en-corr-name-at-phone",
            opening: "Jim Taylor",
            name: "Jim Taylor",
            phone: "514 555 0509",
            address: "3 Pine Lane, Senneville",
            service: "pruning",
            description: "a maple over the driveway",
            urgency: "no",
            events: &[(2, "wait, my name is James Taylor")],
            expect: Expect {
                name: "James Taylor",
                phone: "+15145550509",
                address: "3 Pine Lane, Senneville",
                service: "elagage",
                description: "maple",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "en-corr-service-at-urgency",
            offered: Some("+15145550510"),
            opening: "Emma White",
            name: "Emma White",
            phone: "yes",
            address: "27 Willow Street, Kirkland",
            service: "pruning",
            description: "a huge old stump in the garden",
            urgency: "no",
            events: &[(6, "actually I mean stump grinding")],
            expect: Expect {
                name: "Emma White",
                phone: "+15145550510",
                address: "27 Willow Street, Kirkland",
                service: "essouchement",
                description: "stump",
                urgent: false,
            },
            ..BASE
        },
        // ---- Corrections at the read-back.
        Caller {
            id: "fr-relecture-adresse",
            offered: Some("+14185550601"),
            opening: "Éric Savard",
            name: "Éric Savard",
            phone: "oui",
            address: "250 rue Racine, Chicoutimi",
            service: "abattage",
            description: "un sapin mort",
            urgency: "non",
            events: &[(7, "non, c'est 520 rue Racine, Chicoutimi")],
            expect: Expect {
                name: "Éric Savard",
                phone: "+14185550601",
                address: "520 rue Racine, Chicoutimi",
                service: "abattage",
                description: "sapin",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-relecture-non-seul",
            offered: Some("+15145550602"),
            opening: "Manon Lapointe",
            name: "Manon Lapointe",
            phone: "oui",
            address: "31 rue Masson, Montréal",
            service: "élagage",
            description: "un tilleul trop large",
            urgency: "non",
            events: &[(7, "non"), (8, "le numéro c'est le 514 555 0620")],
            expect: Expect {
                name: "Manon Lapointe",
                phone: "+15145550620",
                address: "31 rue Masson, Montréal",
                service: "elagage",
                description: "tilleul",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-relecture-tel",
            opening: "Yves Carrier",
            name: "Yves Carrier",
            phone: "418 555 0630",
            address: "100 rue Saint-Jean, Québec",
            service: "haie",
            description: "une haie de chèvrefeuille",
            urgency: "non",
            events: &[(7, "non le numéro c'est 418 555 0603")],
            expect: Expect {
                name: "Yves Carrier",
                phone: "+14185550603",
                address: "100 rue Saint-Jean, Québec",
                service: "haie",
                description: "chevrefeuille",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "en-readback-address",
            offered: Some("+15145550604"),
            opening: "Laura Green",
            name: "Laura Green",
            phone: "yes",
            address: "60 Pine Avenue, Montreal",
            service: "stump grinding",
            description: "two stumps in the yard",
            urgency: "no",
            events: &[(7, "no, it's 16 Pine Avenue, Montreal")],
            expect: Expect {
                name: "Laura Green",
                phone: "+15145550604",
                address: "16 Pine Avenue, Montreal",
                service: "essouchement",
                description: "two stumps",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-relecture-deux-tours",
            offered: Some("+18195550605"),
            opening: "Guy Lemieux",
            name: "Guy Lemieux",
            phone: "oui",
            address: "44 rue Laval, Sherbrooke",
            service: "abattage",
            description: "un pin qui penche",
            urgency: "non",
            events: &[
                (7, "non, c'est 414 rue Laval, Sherbrooke"),
                (7, "non, c'est 4014 rue Laval, Sherbrooke"),
            ],
            expect: Expect {
                name: "Guy Lemieux",
                phone: "+18195550605",
                address: "4014 rue Laval, Sherbrooke",
                service: "abattage",
                description: "pin qui penche",
                urgent: false,
            },
            ..BASE
        },
        // ---- First names only, family name first.
        Caller {
            id: "fr-prenom-seul",
            offered: Some("+14185550701"),
            opening: "Martin",
            name: "Martin",
            surname: "Dubé",
            phone: "oui",
            address: "17 rue de la Gare, Lévis",
            service: "élagage",
            description: "un érable qui touche le toit",
            urgency: "non",
            expect: Expect {
                name: "Martin Dubé",
                phone: "+14185550701",
                address: "17 rue de la Gare, Lévis",
                service: "elagage",
                description: "touche le toit",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-prenom-puis-nom-complet",
            offered: Some("+15145550702"),
            opening: "c'est Julie",
            name: "Julie",
            surname: "Julie Lessard",
            phone: "oui",
            address: "52 rue Bélanger, Montréal",
            service: "abattage",
            description: "un arbre mort",
            urgency: "non",
            expect: Expect {
                name: "Julie Lessard",
                phone: "+15145550702",
                address: "52 rue Bélanger, Montréal",
                service: "abattage",
                description: "arbre mort",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-nom-prenom",
            offered: Some("+14505550703"),
            opening: "Tremblay, Julie",
            name: "Tremblay, Julie",
            phone: "oui",
            address: "8 rue Dorion, Granby",
            service: "haie",
            description: "une haie de cèdres",
            urgency: "non",
            expect: Expect {
                name: "Julie Tremblay",
                phone: "+14505550703",
                address: "8 rue Dorion, Granby",
                service: "haie",
                description: "cedres",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "en-first-name",
            offered: Some("+15145550704"),
            opening: "John",
            name: "John",
            surname: "Peterson",
            phone: "yes",
            address: "5 Lake Road, Hudson",
            service: "tree removal",
            description: "a dead spruce",
            urgency: "no",
            expect: Expect {
                name: "John Peterson",
                phone: "+15145550704",
                address: "5 Lake Road, Hudson",
                service: "abattage",
                description: "spruce",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-prenom-dans-histoire",
            offered: Some("+18195550705"),
            opening: "bonjour c'est Ginette j'ai une souche à faire enlever au 12 rue Dufferin à Granby",
            name: "Ginette",
            surname: "Lacasse",
            phone: "oui",
            address: "12 rue Dufferin à Granby",
            service: "essouchement",
            description: "une souche",
            urgency: "non",
            expect: Expect {
                name: "Ginette Lacasse",
                phone: "+18195550705",
                address: "12 rue Dufferin à Granby",
                service: "essouchement",
                description: "souche",
                urgent: false,
            },
            ..BASE
        },
        // ---- Questions.
        Caller {
            id: "fr-question-prix",
            offered: Some("+15145550801"),
            opening: "Roger Bédard",
            name: "Roger Bédard",
            phone: "oui",
            address: "400 rue Sherbrooke Est, Montréal",
            service: "abattage",
            description: "un gros orme",
            urgency: "non",
            events: &[(4, "combien ça coûte pour couper un arbre?")],
            expect: Expect {
                name: "Roger Bédard",
                phone: "+15145550801",
                address: "400 rue Sherbrooke Est, Montréal",
                service: "abattage",
                description: "orme",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-question-heures",
            offered: Some("+14185550802"),
            opening: "vous êtes ouverts jusqu'à quelle heure?",
            name: "Diane Simard",
            phone: "oui",
            address: "22 rue Racine, Chicoutimi",
            service: "élagage",
            description: "un bouleau trop haut",
            urgency: "non",
            expect: Expect {
                name: "Diane Simard",
                phone: "+14185550802",
                address: "22 rue Racine, Chicoutimi",
                service: "elagage",
                description: "bouleau",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-question-deneigement",
            offered: Some("+14505550803"),
            opening: "Claude Hébert",
            name: "Claude Hébert",
            phone: "oui",
            address: "75 rue Principale, Saint-Sauveur",
            service: "élagage",
            description: "des branches au-dessus du toit",
            urgency: "non",
            events: &[(4, "est-ce que vous faites du déneigement?")],
            expect: Expect {
                name: "Claude Hébert",
                phone: "+14505550803",
                address: "75 rue Principale, Saint-Sauveur",
                service: "elagage",
                description: "au-dessus du toit",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "en-question-price",
            offered: Some("+15145550804"),
            opening: "Susan Hall",
            name: "Susan Hall",
            phone: "yes",
            address: "11 Bay Street, Pointe-Claire",
            service: "hedge trimming",
            description: "a tall cedar hedge",
            urgency: "no",
            events: &[(5, "how much does it cost?")],
            expect: Expect {
                name: "Susan Hall",
                phone: "+15145550804",
                address: "11 Bay Street, Pointe-Claire",
                service: "haie",
                description: "cedar hedge",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-question-services",
            offered: Some("+15145550805"),
            opening: "Lise Côté",
            name: "Lise Côté",
            phone: "oui",
            address: "19 rue Papineau, Montréal",
            service: "essouchement",
            description: "une souche de saule",
            urgency: "non",
            events: &[(4, "quels services vous offrez?")],
            expect: Expect {
                name: "Lise Côté",
                phone: "+15145550805",
                address: "19 rue Papineau, Montréal",
                service: "essouchement",
                description: "saule",
                urgent: false,
            },
            ..BASE
        },
        // ---- Numbers in words.
        Caller {
            id: "fr-mots-tel",
            opening: "Normand Gagné",
            name: "Normand Gagné",
            phone: "quatre cinq zéro, deux deux deux, trente-trois trente-trois",
            address: "16 rue Laurier, Beloeil",
            service: "abattage",
            description: "un vieux saule",
            urgency: "non",
            expect: Expect {
                name: "Normand Gagné",
                phone: "+14502223333",
                address: "16 rue Laurier, Beloeil",
                service: "abattage",
                description: "saule",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-mots-adresse",
            offered: Some("+14185550902"),
            opening: "Serge Lévesque",
            name: "Serge Lévesque",
            phone: "oui",
            address: "cinq cent vingt rue Principale, Rimouski",
            service: "élagage",
            description: "un érable argenté",
            urgency: "non",
            expect: Expect {
                name: "Serge Lévesque",
                phone: "+14185550902",
                address: "520 rue Principale, Rimouski",
                service: "elagage",
                description: "argente",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "en-words-phone",
            opening: "Grace Lee",
            name: "Grace Lee",
            phone: "five one four, five five five, oh nine oh three",
            address: "40 Queen Street, Lachute",
            service: "pruning",
            description: "an apple tree to prune",
            urgency: "no",
            expect: Expect {
                name: "Grace Lee",
                phone: "+15145550903",
                address: "40 Queen Street, Lachute",
                service: "elagage",
                description: "apple tree",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-mots-adresse-histoire",
            offered: Some("+18195550904"),
            opening: "bonjour c'est Lucien Demers j'ai une branche sur le toit au douze cent cinquante rue Galt à Sherbrooke",
            name: "Lucien Demers",
            phone: "oui",
            address: "1250 rue Galt à Sherbrooke",
            service: "urgence",
            description: "une branche sur le toit",
            urgency: "oui",
            expect: Expect {
                name: "Lucien Demers",
                phone: "+18195550904",
                address: "1250 rue Galt à Sherbrooke",
                service: "urgence_tempete",
                description: "branche sur le toit",
                urgent: true,
            },
            ..BASE
        },
        // ---- Apartments.
        Caller {
            id: "fr-appartement-1",
            offered: Some("+15145551001"),
            opening: "Nicole Blais",
            name: "Nicole Blais",
            phone: "oui",
            address: "1234 rue Sherbrooke Est appartement 4, Montréal",
            service: "élagage",
            description: "l'érable devant le bloc",
            urgency: "non",
            expect: Expect {
                name: "Nicole Blais",
                phone: "+15145551001",
                address: "1234 rue Sherbrooke Est appartement 4, Montréal",
                service: "elagage",
                description: "erable",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-appartement-2",
            offered: Some("+15145551002"),
            opening: "Alain Roberge",
            name: "Alain Roberge",
            phone: "oui",
            address: "3-456 avenue Papineau, Montréal",
            service: "abattage",
            description: "un arbre malade dans la cour commune",
            urgency: "non",
            expect: Expect {
                name: "Alain Roberge",
                phone: "+15145551002",
                address: "3-456 avenue Papineau, Montréal",
                service: "abattage",
                description: "cour commune",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-appartement-3",
            offered: Some("+14185551003"),
            opening: "Josée Vachon",
            name: "Josée Vachon",
            phone: "oui",
            address: "appartement 12, 800 boulevard René-Lévesque, Québec",
            service: "haie",
            description: "la haie du stationnement",
            urgency: "non",
            expect: Expect {
                name: "Josée Vachon",
                phone: "+14185551003",
                address: "800 boulevard René-Lévesque, Québec, appartement 12",
                service: "haie",
                description: "stationnement",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "en-apartment",
            offered: Some("+15145551004"),
            opening: "Rachel Adams",
            name: "Rachel Adams",
            phone: "yes",
            address: "apartment 5, 2100 Decarie Boulevard, Montreal",
            service: "pruning",
            description: "a linden tree near the balcony",
            urgency: "no",
            expect: Expect {
                name: "Rachel Adams",
                phone: "+15145551004",
                address: "2100 Decarie Boulevard, Montreal, apartment 5",
                service: "elagage",
                description: "linden",
                urgent: false,
            },
            ..BASE
        },
        // ---- Rural routes.
        Caller {
            id: "fr-rang",
            offered: Some("+14505551101"),
            opening: "Gilles Beaudoin",
            name: "Gilles Beaudoin",
            phone: "oui",
            address: "c'est au 1250 rang Saint-Joseph, Saint-Hyacinthe",
            service: "abattage",
            description: "une rangée de peupliers le long du champ",
            urgency: "non",
            expect: Expect {
                name: "Gilles Beaudoin",
                phone: "+14505551101",
                address: "1250 rang Saint-Joseph, Saint-Hyacinthe",
                service: "abattage",
                description: "peupliers",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-route",
            offered: Some("+14505551102"),
            opening: "Jocelyne Arsenault",
            name: "Jocelyne Arsenault",
            phone: "oui",
            address: "1880 route 132, Saint-Anicet",
            service: "un arbre tombé",
            description: "un gros saule est tombé sur la clôture",
            urgency: "oui le plus vite possible",
            expect: Expect {
                name: "Jocelyne Arsenault",
                phone: "+14505551102",
                address: "1880 route 132, Saint-Anicet",
                service: "urgence_tempete",
                description: "saule",
                urgent: true,
            },
            ..BASE
        },
        Caller {
            id: "fr-chemin",
            offered: Some("+18195551103"),
            opening: "Raymond Plourde",
            name: "Raymond Plourde",
            phone: "oui",
            address: "345 chemin du Lac-Bouchette, Lac-Bouchette",
            service: "élagage",
            description: "des pins au bord du lac",
            urgency: "non",
            expect: Expect {
                name: "Raymond Plourde",
                phone: "+18195551103",
                address: "345 chemin du Lac-Bouchette, Lac-Bouchette",
                service: "elagage",
                description: "pins",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-montee-histoire",
            offered: Some("+14505551104"),
            opening: "bonjour c'est Ginette Boisvert au 2150 montée Gagnon à Terrebonne",
            name: "Ginette Boisvert",
            phone: "oui",
            address: "2150 montée Gagnon à Terrebonne",
            service: "plantation",
            description: "planter une dizaine d'érables",
            urgency: "non",
            expect: Expect {
                name: "Ginette Boisvert",
                phone: "+14505551104",
                address: "2150 montée Gagnon à Terrebonne",
                service: "plantation",
                description: "dizaine",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "en-rural",
            offered: Some("+18195551105"),
            opening: "Brian Scott",
            name: "Brian Scott",
            phone: "yes",
            address: "2200 Route 105, Wakefield",
            service: "tree removal",
            description: "a leaning poplar by the barn",
            urgency: "no",
            expect: Expect {
                name: "Brian Scott",
                phone: "+18195551105",
                address: "2200 Route 105, Wakefield",
                service: "abattage",
                description: "poplar",
                urgent: false,
            },
            ..BASE
        },
        // ---- Services outside the list, unmatched answers.
        Caller {
            id: "fr-service-flou",
            offered: Some("+15145551201"),
            opening: "Patrick Nadeau",
            name: "Patrick Nadeau",
            phone: "oui",
            address: "70 rue Saint-Denis, Montréal",
            service: "de l'abattage",
            description: "un érable mort",
            urgency: "non",
            events: &[(4, "ben c'est pour mon terrain")],
            expect: Expect {
                name: "Patrick Nadeau",
                phone: "+15145551201",
                address: "70 rue Saint-Denis, Montréal",
                service: "abattage",
                description: "erable mort",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-service-autre",
            offered: Some("+15145551202"),
            opening: "Monique Thibault",
            name: "Monique Thibault",
            phone: "oui",
            address: "5 rue Fabre, Montréal",
            service: "c'est pour ramasser des feuilles mortes partout sur le terrain",
            description: "beaucoup de feuilles après l'automne",
            urgency: "non",
            expect: Expect {
                name: "Monique Thibault",
                phone: "+15145551202",
                address: "5 rue Fabre, Montréal",
                service: "autre",
                description: "feuilles",
                urgent: false,
            },
            ..BASE
        },
        Caller {
            id: "fr-urgence-dans-description",
            offered: Some("+14185551203"),
            opening: "Benoît Harvey",
            name: "Benoît Harvey",
            phone: "oui",
            address: "33 rue Price, Jonquière",
            service: "élagage",
            description: "une grosse branche cassée pend au-dessus de l'entrée c'est urgent",
            urgency: "oui",
            expect: Expect {
                name: "Benoît Harvey",
                phone: "+14185551203",
                address: "33 rue Price, Jonquière",
                service: "elagage",
                description: "branche cassee",
                urgent: true,
            },
            ..BASE
        },
        Caller {
            id: "en-switch",
            opening: "English please",
            name: "my name is Olivia King",
            phone: "five one four five five five one two zero four",
            address: "14 Wood Avenue, Westmount",
            service: "an assessment",
            description: "the oak looks sick",
            urgency: "no",
            expect: Expect {
                name: "Olivia King",
                phone: "+15145551204",
                address: "14 Wood Avenue, Westmount",
                service: "evaluation",
                description: "oak",
                urgent: false,
            },
            ..BASE
        },
    ]
}

/// How a call with one caller went.
struct Played {
    lead: Lead,
    questions: usize,
    /// Of those, the read-back (« Est-ce exact? ») and what to fix in it.
    read_back: usize,
    transcript: Vec<String>,
}

fn is_surname_question(message: &str) -> bool {
    let m = fold(message);
    m.contains("nom de famille") || m.contains("last name")
}

fn is_read_back(message: &str) -> bool {
    let m = fold(message);
    m.contains("est-ce exact") || m.contains("is that right")
}

fn asks_what_to_fix(message: &str) -> bool {
    let m = fold(message);
    m.contains("qu'est-ce que je dois corriger") || m.contains("what should i correct")
}

/// The caller's answer to what Myriam just asked.
fn answer(caller: &Caller, outcome: &Outcome, events: &mut Vec<(u8, &'static str)>) -> String {
    let mut take = |step: u8| -> Option<String> {
        let at = events.iter().position(|(s, _)| *s == step)?;
        Some(events.remove(at).1.to_owned())
    };
    let message = outcome.message.as_str();
    if asks_what_to_fix(message) {
        return take(8).unwrap_or_else(|| "l'adresse".to_owned());
    }
    if is_read_back(message) {
        return take(7).unwrap_or_else(|| {
            if outcome.lead_data.as_ref().map(|d| d.language) == Some(myriam::domain::Language::En)
            {
                "yes".to_owned()
            } else {
                "oui".to_owned()
            }
        });
    }
    if is_surname_question(message) {
        return caller.surname.to_owned();
    }
    let Some(step) = outcome.next_step else {
        return String::new();
    };
    if let Some(said) = take(step) {
        return said;
    }
    match step {
        1 => caller.name,
        2 => caller.phone,
        3 => caller.address,
        4 => caller.service,
        5 => caller.description,
        _ => caller.urgency,
    }
    .to_owned()
}

fn play(caller: &Caller) -> Played {
    let offered = caller
        .offered
        .map(|c| PhoneNumber::try_from(c).expect("a valid caller ID"));
    let mut lead = Lead::new(LeadId::new()).with_offered_phone(offered);
    let mut events: Vec<(u8, &'static str)> = caller.events.to_vec();
    let mut transcript = Vec::new();
    let mut said = caller.opening.to_owned();
    if let Some(at) = events.iter().position(|(s, _)| *s == 1) {
        // An event at the first question replaces the opening.
        events.remove(at).1.clone_into(&mut said);
    }
    let mut questions = 1;
    let mut read_back = 0;
    for _ in 0..25 {
        transcript.push(format!("  caller: {said}"));
        let outcome = machine::process_response(&mut lead, &said, &[]);
        transcript.push(format!("  myriam: {}", outcome.message));
        if outcome.ends_call() || lead.status != LeadStatus::EnCours {
            break;
        }
        if is_read_back(&outcome.message) || asks_what_to_fix(&outcome.message) {
            read_back += 1;
        }
        said = answer(caller, &outcome, &mut events);
        questions += 1;
    }
    Played {
        lead,
        questions,
        read_back,
        transcript,
    }
}

/// What differs between the lead and what a receptionist would have written down.
fn differences(caller: &Caller, lead: &Lead) -> Vec<String> {
    let e = &caller.expect;
    let data = lead.data();
    let mut out = Vec::new();
    if lead.status != LeadStatus::Qualifie {
        out.push(format!("status {:?}", lead.status));
    }
    let check = |out: &mut Vec<String>, what: &str, got: Option<&str>, want: &str| {
        if got != Some(want) {
            out.push(format!("{what}: got {got:?}, want {want:?}"));
        }
    };
    check(&mut out, "name", data.nom_complet.as_deref(), e.name);
    check(&mut out, "phone", data.telephone.as_deref(), e.phone);
    check(
        &mut out,
        "address",
        data.adresse_complete.as_deref(),
        e.address,
    );
    check(&mut out, "service", data.type_service, e.service);
    let description = data.description.as_deref().map(fold).unwrap_or_default();
    if !description.contains(e.description) {
        out.push(format!(
            "description: got {:?}, want it to contain {:?}",
            data.description, e.description
        ));
    }
    if lead.urgence != Some(e.urgent) {
        out.push(format!(
            "urgence: got {:?}, want {}",
            lead.urgence, e.urgent
        ));
    }
    out
}

#[test]
fn the_corpus_is_qualified_like_a_receptionist_would() {
    let callers = corpus();
    assert!(callers.len() >= 60, "{} callers", callers.len());
    let mut ids: Vec<&str> = callers.iter().map(|c| c.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), callers.len(), "caller ids are unique");

    let mut correct = 0usize;
    let mut questions = Vec::new();
    let mut without_read_back = Vec::new();
    let mut failures = Vec::new();
    for caller in &callers {
        let played = play(caller);
        let wrong = differences(caller, &played.lead);
        if wrong.is_empty() {
            correct += 1;
            questions.push(played.questions);
            without_read_back.push(played.questions - played.read_back);
        } else {
            failures.push(format!(
                "{} ({} questions):\n    {}\n{}",
                caller.id,
                played.questions,
                wrong.join("\n    "),
                played.transcript.join("\n")
            ));
        }
    }
    let median = |mut counts: Vec<usize>| -> f64 {
        counts.sort_unstable();
        let at = |i: usize| f64::from(u32::try_from(counts[i]).unwrap_or(u32::MAX));
        match counts.len() {
            0 => 0.0,
            n if n % 2 == 1 => at(n / 2),
            n => f64::midpoint(at(n / 2 - 1), at(n / 2)),
        }
    };
    let median_without = median(without_read_back);
    let median = median(questions);
    let total = callers.len();
    let share = 100.0 * f64::from(u32::try_from(correct).unwrap_or(0))
        / f64::from(u32::try_from(total).unwrap_or(1));
    println!(
        "corpus: {correct}/{total} callers qualified correctly ({share:.1} %), median {median} \
         questions per qualified call ({median_without} without the read-back)"
    );
    for failure in &failures {
        println!("{failure}");
    }
    assert!(
        failures.is_empty(),
        "{} of {total} callers were not qualified correctly:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
